"""Suite files: read, checked and written back. Pure, no I/O.

A suite is a named list of cases `{name, scenario_prompt, expected_outcome}` with an optional
default target and settings. A file is either ThunderPhone's guide format, a JSON array of cases
(named by `--name` or by the file's stem), or an object `{name, target, settings, cases}`.
Anything the bot cannot use is refused with a `SuiteError` naming where and what, before
anything is stored.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Literal

from bot.commands import (
    MAX_PROMPT_CHARS,
    MAX_REPEAT,
    MAX_RUNS_PER_REQUEST,
    MAX_STAGGER_SECONDS,
    CommandError,
    Target,
    normalise_e164,
    parse_target,
    suite_name,
)
from bot.expectations import ExpectationError, Expected, parse_expected
from storage.models import SuiteCaseRecord, SuiteRecord

MAX_CASES = 100
MAX_RUNS = MAX_RUNS_PER_REQUEST  # cases x repeat in one suite run
MAX_CASE_NAME_CHARS = 100
CASE_KEYS = ("name", "scenario_prompt", "expected_outcome")
FILE_KEYS = ("name", "target", "settings", "cases")
SETTING_KEYS = ("stagger_seconds", "repeat", "direction", "caller_number")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SuiteError(ValueError):
    """A suite file, name or target the bot cannot use; the message names the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SuiteSettings:
    """Defaults for the suite's runs; None: the run's own default."""

    stagger_seconds: int | None = None
    repeat: int | None = None
    direction: Literal["outbound", "inbound"] | None = None
    caller_number: str | None = None

    def as_dict(self) -> dict[str, Any]:
        values = {key: getattr(self, key) for key in SETTING_KEYS}
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class SuiteCase:
    name: str
    scenario_prompt: str
    expected: Expected
    # The case's `expected_outcome` as imported, as JSON text (None: the file gave none).
    expected_outcome: str | None = None

    @property
    def expected_raw(self) -> Any:
        """The `expected_outcome` value as imported, for an export."""
        return None if self.expected_outcome is None else json.loads(self.expected_outcome)


@dataclass(frozen=True)
class SuiteFile:
    """A suite as a file describes it."""

    name: str
    cases: tuple[SuiteCase, ...]
    target: Target | None = None
    settings: SuiteSettings = field(default_factory=SuiteSettings)


@dataclass(frozen=True)
class Suite(SuiteFile):
    """A saved suite."""

    created_by: str = ""
    created_at: str = ""
    updated_at: str = ""


def parse_suite(
    text: str, *, name: str | None, filename: str | None, target: str | None = None
) -> SuiteFile:
    """Read a suite file. The suite's name is `name` (`--name`), else the object's `name`, else
    the stem of `filename`; `target` (`--target`) overrides the file's. Raises `SuiteError`."""
    default_target = parse_default_target(target, "--target") if target is not None else None
    data = _load_json(text)
    if isinstance(data, list):
        file_name, file_target, settings, items = None, None, SuiteSettings(), data
    elif isinstance(data, dict):
        file_name, file_target, settings, items = _parse_object(data)
    else:
        raise SuiteError(
            'the file must hold a JSON array of cases, or an object with "cases"; '
            f"it holds {_json_kind(data)}"
        )
    named = _suite_name(name, file_name, filename)
    cases = _parse_cases(items)
    repeat = settings.repeat or 1
    if len(cases) * repeat > MAX_RUNS:
        raise SuiteError(
            f"settings.repeat: {repeat} runs of each of {len(cases)} cases is "
            f"{len(cases) * repeat} runs; a suite run is at most {MAX_RUNS}"
        )
    return SuiteFile(
        name=named,
        cases=cases,
        target=default_target or file_target,
        settings=settings,
    )


def dump_suite(suite: SuiteFile) -> str:
    """The suite as a file `parse_suite` reads back to the same suite: the plain array of cases,
    or the object form when the suite has a default target or settings."""
    cases = []
    for case in suite.cases:
        item: dict[str, Any] = {"name": case.name, "scenario_prompt": case.scenario_prompt}
        if case.expected_outcome is not None:
            item["expected_outcome"] = case.expected_raw
        cases.append(item)
    settings = suite.settings.as_dict()
    data: Any = cases
    if suite.target is not None or settings:
        data = {"name": suite.name}
        if suite.target is not None:
            data["target"] = suite.target.label
        if settings:
            data["settings"] = settings
        data["cases"] = cases
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def parse_suite_name(text: str, source: str = "") -> str:
    """A suite name, lower-cased (as `/testcall suite` reads it); `source` says where it came
    from, for the message."""
    try:
        return suite_name(text)
    except CommandError as error:
        raise SuiteError(f"{source}: {error.problem}" if source else error.problem) from error


def parse_default_target(text: str, where: str = "target") -> Target:
    """A suite's default target: `agent:<id>` or `number:<id>` (aliases belong to a workspace's
    people and can change, so a suite names the agent or number itself)."""
    try:
        parsed = parse_target(text)
    except CommandError as error:
        raise SuiteError(f"{where}: {error.problem}") from error
    if parsed.kind == "alias":
        raise SuiteError(
            f'{where}: "{text}" is not agent:<id> or number:<id>; a suite\'s default target '
            "names the agent or number itself, like agent:12"
        )
    return parsed


def suite_record(suite: SuiteFile, *, created_by: str) -> SuiteRecord:
    """What storage keeps of a suite."""
    target = suite.target
    return SuiteRecord(
        name=suite.name,
        target_type=target.kind if target else None,
        target_id=target.id if target else None,
        settings=suite.settings.as_dict(),
        created_by=created_by,
        cases=[
            SuiteCaseRecord(
                position=position,
                name=case.name,
                scenario_prompt=case.scenario_prompt,
                expected_outcome=case.expected_outcome,
            )
            for position, case in enumerate(suite.cases, start=1)
        ],
    )


def suite_from_record(record: SuiteRecord) -> Suite:
    """A stored suite, its expectations read again (they were checked when it was imported)."""
    target = None
    if record.target_type is not None and record.target_id is not None:
        kind: Literal["agent", "phone_number"] = (
            "agent" if record.target_type == "agent" else "phone_number"
        )
        target = Target(kind=kind, id=record.target_id)
    cases = []
    for index, case in enumerate(record.cases, start=1):
        raw = None if case.expected_outcome is None else json.loads(case.expected_outcome)
        try:
            expected = parse_expected(raw)
        except ExpectationError as error:  # stored by an earlier release with other rules
            where = f"case {index} ({json.dumps(case.name, ensure_ascii=False)})"
            raise SuiteError(f"{where}: {error.field} {error.problem}") from error
        cases.append(
            SuiteCase(
                name=case.name,
                scenario_prompt=case.scenario_prompt,
                expected=expected,
                expected_outcome=case.expected_outcome,
            )
        )
    return Suite(
        name=record.name,
        cases=tuple(cases),
        target=target,
        settings=_parse_settings(record.settings),
        created_by=record.created_by,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def target_label(target_type: str | None, target_id: int | None) -> str:
    """`agent:12`, `number:5`, or "" when there is no default target."""
    if target_type is None or target_id is None:
        return ""
    return f"{'agent' if target_type == 'agent' else 'number'}:{target_id}"


class _Refused(ValueError):
    """Raised while decoding JSON for what JSON allows but a suite file must not hold."""


def _load_json(text: str) -> Any:
    if not text.strip():
        raise SuiteError("the file is empty; it should hold a JSON array of cases")
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as error:
        raise SuiteError(f"line {error.lineno}, column {error.colno}: {error.msg}") from error
    except _Refused as error:
        raise SuiteError(str(error)) from error
    except RecursionError as error:
        raise SuiteError("it is nested too deeply to read") from error
    except ValueError as error:  # a number of thousands of digits, which int() refuses
        raise SuiteError("it holds a number too long to read") from error


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # A repeated key would silently lose one of its values.
            raise _Refused(f'the key "{key}" appears twice in one object')
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"{text} is too large a number")
    return value


def _parse_object(
    data: dict[str, Any],
) -> tuple[str | None, Target | None, SuiteSettings, Any]:
    unknown = [key for key in data if key not in FILE_KEYS]
    if unknown:
        raise SuiteError(f'"{unknown[0]}" is not a suite field (use {", ".join(FILE_KEYS)})')
    if "cases" not in data:
        raise SuiteError('the suite object has no "cases": give them as a list')
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        raise SuiteError("name must be a string")
    raw_target = data.get("target")
    if raw_target is not None and not isinstance(raw_target, str):
        raise SuiteError('target must be a string like "agent:12"')
    target = parse_default_target(raw_target) if raw_target is not None else None
    raw_settings = data.get("settings")
    if raw_settings is not None and not isinstance(raw_settings, dict):
        raise SuiteError("settings must be an object")
    settings = _parse_settings(raw_settings or {})
    return name, target, settings, data["cases"]


def _suite_name(given: str | None, in_file: str | None, filename: str | None) -> str:
    if given is not None:
        return parse_suite_name(given, "--name")
    if in_file is not None:
        return parse_suite_name(in_file, "name")
    if filename:
        stem = PurePath(filename).stem
        if stem:
            return parse_suite_name(stem, "the file name (give another with --name)")
    raise SuiteError("the suite needs a name: give one with --name")


def _parse_settings(raw: Mapping[str, Any]) -> SuiteSettings:
    unknown = [key for key in raw if key not in SETTING_KEYS]
    if unknown:
        raise SuiteError(f"settings.{unknown[0]} is not a setting (use {', '.join(SETTING_KEYS)})")
    stagger = _whole(raw, "stagger_seconds", 0, MAX_STAGGER_SECONDS)
    repeat = _whole(raw, "repeat", 1, MAX_REPEAT)
    direction = raw.get("direction")
    if direction is not None and direction not in ("outbound", "inbound"):
        raise SuiteError('settings.direction must be "outbound" or "inbound"')
    caller = raw.get("caller_number")
    if caller is not None:
        if not isinstance(caller, str):
            raise SuiteError("settings.caller_number must be a string, like +14155550123")
        try:
            caller = normalise_e164(caller)
        except CommandError as error:
            raise SuiteError(f"settings.caller_number: {error.problem}") from error
    return SuiteSettings(
        stagger_seconds=stagger, repeat=repeat, direction=direction, caller_number=caller
    )


def _whole(raw: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SuiteError(f"settings.{key} must be a whole number from {low} to {high}")
    return value


def _parse_cases(items: Any) -> tuple[SuiteCase, ...]:
    if not isinstance(items, list):
        raise SuiteError(f"cases must be a list of cases; it is {_json_kind(items)}")
    if not items:
        raise SuiteError("the suite has no cases")
    if len(items) > MAX_CASES:
        raise SuiteError(f"the suite has {len(items)} cases; a suite holds at most {MAX_CASES}")
    cases: list[SuiteCase] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(items, start=1):
        case = _parse_case(index, item)
        key = case.name.casefold()
        if key in seen:
            raise SuiteError(
                f'case {index}: the name "{case.name}" is used twice '
                f"(cases {seen[key]} and {index})"
            )
        seen[key] = index
        cases.append(case)
    return tuple(cases)


def _parse_case(index: int, item: Any) -> SuiteCase:
    where = f"case {index}"
    if not isinstance(item, dict):
        raise SuiteError(
            f"{where}: must be an object with {', '.join(CASE_KEYS)}; it is {_json_kind(item)}"
        )
    raw_name = item.get("name")
    name = raw_name.strip() if isinstance(raw_name, str) else ""
    if name:
        where = f"{where} ({json.dumps(name, ensure_ascii=False)})"
    unknown = [key for key in item if key not in CASE_KEYS]
    if unknown:
        raise SuiteError(
            f'{where}: "{unknown[0]}" is not a case field (use {", ".join(CASE_KEYS)})'
        )
    if raw_name is None:
        raise SuiteError(f"{where}: name is missing")
    if not name:
        raise SuiteError(f"{where}: name must be a non-empty string")
    if len(name) > MAX_CASE_NAME_CHARS:
        raise SuiteError(
            f"{where}: name is {len(name)} characters; keep it to {MAX_CASE_NAME_CHARS}"
        )
    if _CONTROL.search(name):
        raise SuiteError(f"{where}: name must be one line of text")
    prompt = item.get("scenario_prompt")
    if prompt is None:
        raise SuiteError(f"{where}: scenario_prompt is missing")
    if not isinstance(prompt, str):
        raise SuiteError(f"{where}: scenario_prompt must be a string")
    if not prompt.strip():
        raise SuiteError(f"{where}: scenario_prompt is empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise SuiteError(
            f"{where}: scenario_prompt is {len(prompt):,} characters; keep it to "
            f"{MAX_PROMPT_CHARS:,}"
        )
    raw_expected = item.get("expected_outcome")
    try:
        expected = parse_expected(raw_expected)
    except ExpectationError as error:
        raise SuiteError(f"{where}: {error.field} {error.problem}") from error
    stored = json.dumps(raw_expected, ensure_ascii=False) if "expected_outcome" in item else None
    return SuiteCase(name=name, scenario_prompt=prompt, expected=expected, expected_outcome=stored)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object"
