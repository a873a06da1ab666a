"""What a suite case expects of its run: read from the suite file's `expected_outcome`.

`expected_outcome` is either a string (a grade outcome such as "success", compared with the
grade's `call_outcome` case-insensitively; any other text is kept and shown, not checked) or an
object with any of the checks below. A case with nothing checkable passes when its run completed
and scored at or above the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.thunderphone.models import normalise_score

# Grade outcomes a string expectation is checked against; other text is a note for people.
GRADE_OUTCOMES = frozenset({"success", "failure", "partial", "unknown"})
STATUSES = frozenset({"completed", "failed"})
KEYS = (
    "status",
    "call_outcome",
    "min_score",
    "min_duration_seconds",
    "max_duration_seconds",
    "transcript_contains",
    "transcript_excludes",
    "tools_called",
    "tools_not_called",
)


class ExpectationError(ValueError):
    """An `expected_outcome` the bot cannot check; `field` names the part at fault."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class ToolCall:
    """A tool the agent must call, with argument values that must match when given."""

    name: str
    arguments: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Expected:
    status: str | None = None
    call_outcome: str | None = None
    min_score: float | None = None  # a fraction, 0-1
    min_duration_seconds: int | None = None
    max_duration_seconds: int | None = None
    transcript_contains: tuple[str, ...] = ()
    transcript_excludes: tuple[str, ...] = ()
    tools_called: tuple[ToolCall, ...] = ()
    tools_not_called: tuple[str, ...] = ()
    note: str | None = None  # free text kept and shown, not checked
    raw: Any = field(default=None, compare=False)  # as written, so an export reproduces it

    @property
    def checkable(self) -> bool:
        return any(
            value not in (None, ())
            for value in (
                self.status,
                self.call_outcome,
                self.min_score,
                self.min_duration_seconds,
                self.max_duration_seconds,
                self.transcript_contains,
                self.transcript_excludes,
                self.tools_called,
                self.tools_not_called,
            )
        )


def parse_expected(value: Any) -> Expected:
    """Read an `expected_outcome` (None or missing: nothing expected); ExpectationError names
    the first part that cannot be checked."""
    if value is None:
        return Expected(raw=None)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in GRADE_OUTCOMES:
            return Expected(call_outcome=text.lower(), raw=value)
        return Expected(note=text or None, raw=value)
    if not isinstance(value, dict):
        raise ExpectationError("expected_outcome", "must be a string or an object")
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ExpectationError(
            f"expected_outcome.{unknown[0]}", f"is not a known check (use {', '.join(KEYS)})"
        )
    status = value.get("status")
    if status is not None and (not isinstance(status, str) or status.lower() not in STATUSES):
        raise ExpectationError("expected_outcome.status", 'must be "completed" or "failed"')
    outcome = value.get("call_outcome")
    if outcome is not None and (not isinstance(outcome, str) or not outcome.strip()):
        raise ExpectationError("expected_outcome.call_outcome", "must be a non-empty string")
    minimum = _duration(value, "min_duration_seconds")
    maximum = _duration(value, "max_duration_seconds")
    if minimum is not None and maximum is not None and minimum > maximum:
        raise ExpectationError(
            "expected_outcome.max_duration_seconds", "must not be less than min_duration_seconds"
        )
    return Expected(
        status=status.lower() if isinstance(status, str) else None,
        call_outcome=outcome.strip().lower() if isinstance(outcome, str) else None,
        min_score=_score(value.get("min_score")),
        min_duration_seconds=minimum,
        max_duration_seconds=maximum,
        transcript_contains=_phrases(value, "transcript_contains"),
        transcript_excludes=_phrases(value, "transcript_excludes"),
        tools_called=_tools(value.get("tools_called")),
        tools_not_called=_names(value, "tools_not_called"),
        raw=value,
    )


def _score(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise ExpectationError("expected_outcome.min_score", "must be a number from 0 to 1 or 100")
    score = normalise_score(value)  # like grades: 0-1, or 0-100
    assert score is not None
    return score


def _duration(value: dict[str, Any], key: str) -> int | None:
    seconds = value.get(key)
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ExpectationError(f"expected_outcome.{key}", "must be a whole number of seconds")
    return seconds


def _phrases(value: dict[str, Any], key: str) -> tuple[str, ...]:
    items = value.get(key)
    if items is None:
        return ()
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise ExpectationError(f"expected_outcome.{key}", "must be a list of non-empty phrases")
    return tuple(item.strip() for item in items)


def _names(value: dict[str, Any], key: str) -> tuple[str, ...]:
    return _phrases(value, key)


def _tools(items: Any) -> tuple[ToolCall, ...]:
    if items is None:
        return ()
    if not isinstance(items, list):
        raise ExpectationError("expected_outcome.tools_called", "must be a list")
    tools = []
    for index, item in enumerate(items):
        where = f"expected_outcome.tools_called[{index}]"
        if isinstance(item, str) and item.strip():
            tools.append(ToolCall(item.strip()))
            continue
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ExpectationError(
                where, 'must be a tool name or {"name": ..., "arguments": {...}}'
            )
        arguments = item.get("arguments") or {}
        if not isinstance(arguments, dict):
            raise ExpectationError(f"{where}.arguments", "must be an object")
        pairs = tuple(sorted((str(k), _argument_text(v)) for k, v in arguments.items()))
        tools.append(ToolCall(item["name"].strip(), pairs))
    return tuple(tools)


def _argument_text(value: Any) -> str:
    """Argument values compare as text: 12345 and "12345" are the same order number."""
    return value if isinstance(value, str) else str(value)
