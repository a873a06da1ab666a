"""The routing data the bot carries in Slack interactive payloads: button values and modals'
private_metadata.

Every builder writes it with `encode` and every handler reads it with `decode`. The text is
`key=value` pairs joined by `;` in field order, absent fields left out: `run=7110;page=2`. A
field's key is its name without `_id`, so adding an id is one line in `Route` (an `int` or a `str`
field defaulting to None); renaming a field changes its key, which strands the buttons already
posted, so add and remove fields rather than rename them.

`decode` never raises: Slack hands back whatever an old message carries, so unreadable parts are
dropped, unknown keys ignored (a field removed later leaves old messages working), and the forms
the previous release posted are still read: `7110`, a 32-hex launch id, `7110:2` and
`{"run_id": 7110}`.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

# A button's value may hold 2000 characters and a view's private_metadata 3000: fit the smaller.
MAX_LENGTH = 2000

SEPARATOR = ";"
ASSIGN = "="

# Ids and pages are SQLite integers: non-negative and within 64 bits.
MAX_INT = 2**63 - 1
_INT = re.compile(r"[0-9]{1,19}")
# Text ids are tokens: nothing that could be read as a separator, whitespace or markup.
_STR = re.compile(r"[A-Za-z0-9_.-]{1,64}")

_LEGACY_LAUNCH = re.compile(r"[0-9a-f]{32}")
_LEGACY_PAGE = re.compile(r"([0-9]+):([0-9]+)")


@dataclass(frozen=True)
class Route:
    """What a click or a submission is about. Every field is optional."""

    launch_id: str | None = None
    run_id: int | None = None
    page: int | None = None
    batch_id: str | None = None
    suite: str | None = None
    channel: str | None = None
    approval_id: int | None = None


def _is_int(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_INT


def _parse_int(text: str) -> int | None:
    if not _INT.fullmatch(text):
        return None
    number = int(text)
    return number if number <= MAX_INT else None


def _is_str(value: object) -> bool:
    return isinstance(value, str) and _STR.fullmatch(value) is not None


def _parse_str(text: str) -> str | None:
    return text if _STR.fullmatch(text) else None


@dataclass(frozen=True)
class _Field:
    name: str
    key: str
    valid: Callable[[object], bool]
    parse: Callable[[str], Any]  # the value, or None when the text isn't one


_CODECS: dict[type, tuple[Callable[[object], bool], Callable[[str], Any]]] = {
    int: (_is_int, _parse_int),
    str: (_is_str, _parse_str),
}


def _fields() -> tuple[_Field, ...]:
    hints = typing.get_type_hints(Route)
    found = []
    for field in fields(Route):
        kinds = [kind for kind in typing.get_args(hints[field.name]) if kind is not type(None)]
        if len(kinds) != 1 or kinds[0] not in _CODECS or field.default is not None:
            raise TypeError(f"Route.{field.name}: use `int | None = None` or `str | None = None`")
        found.append(_Field(field.name, field.name.removesuffix("_id"), *_CODECS[kinds[0]]))
    if len({f.key for f in found}) != len(found):
        raise TypeError("two Route fields share a key")
    return tuple(found)


_FIELDS = _fields()
_BY_KEY = {field.key: field for field in _FIELDS}


def encode(route: Route) -> str:
    """The route as short text, e.g. `run=7110;page=2`; ValueError for a value that won't fit."""
    parts = []
    for field in _FIELDS:
        value = getattr(route, field.name)
        if value is None:
            continue
        if not field.valid(value):
            raise ValueError(f"cannot route {field.name}={value!r}")
        parts.append(f"{field.key}{ASSIGN}{value}")
    text = SEPARATOR.join(parts)
    if len(text) > MAX_LENGTH:  # the field limits keep it far shorter; this keeps it so
        raise ValueError(f"route longer than {MAX_LENGTH} characters")
    return text


def decode(text: str | None) -> Route:
    """The route in a payload; what can't be read is left out, so this never raises."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        return Route()
    if ASSIGN not in text:
        return _legacy(text)
    found: dict[str, Any] = {}
    for part in text.split(SEPARATOR):
        key, _, raw = part.partition(ASSIGN)
        field = _BY_KEY.get(key)
        if field is None or field.name in found:
            continue
        value = field.parse(raw)
        if value is not None:
            found[field.name] = value
    return Route(**found)


def unreadable(text: str | None) -> str | None:
    """An id a payload names that `decode` had to leave out for being beyond SQLite's integers,
    like `run 99999999999999999999`, so the person can be told which; None when there is none."""
    if not isinstance(text, str) or not text:
        return None
    if ASSIGN not in text:
        digits = text.partition(":")[0]
        return f"run {_shown(digits)}" if _too_big(digits) else None
    for part in text[:MAX_LENGTH].split(SEPARATOR):
        key, _, raw = part.partition(ASSIGN)
        field = _BY_KEY.get(key)
        if field is not None and field.valid is _is_int and _too_big(raw):
            return f"{key} {_shown(raw)}"
    return None


def _too_big(raw: str) -> bool:
    return raw.isascii() and raw.isdigit() and _parse_int(raw) is None


def _shown(raw: str) -> str:
    return raw if len(raw) <= 40 else f"{raw[:24]}…"


def _legacy(text: str) -> Route:
    """What the previous release put in button values and private_metadata."""
    if _LEGACY_LAUNCH.fullmatch(text):  # before the integer check: 32 digits is no run id
        return Route(launch_id=text)
    if _INT.fullmatch(text):
        return Route(run_id=_parse_int(text))
    if paged := _LEGACY_PAGE.fullmatch(text):
        return Route(run_id=_parse_int(paged[1]), page=_parse_int(paged[2]))
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            return Route()
        run_id = data.get("run_id") if isinstance(data, dict) else None
        return Route(run_id=run_id if _is_int(run_id) else None)
    return Route()
