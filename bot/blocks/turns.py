"""How transcript turns read: speaker-labelled, tool calls as calls, never raw dumps."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from bot.blocks.common import escaped, plural, trim

_SPEAKERS = {"assistant": "Agent", "agent": "Agent", "user": "Caller", "caller": "Caller"}


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return ", ".join(f"{key}={_compact(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(_compact(item) for item in value)
    return json.dumps(value)


def turn_parts(entry: dict[str, Any]) -> tuple[str, str]:
    """(speaker, what was said or done) for one transcript entry, unescaped."""
    role = str(entry.get("role") or "")
    content = entry.get("content")
    if role == "tool_call":
        if isinstance(content, dict):
            arguments = content.get("arguments") or {}
            if isinstance(arguments, str):
                with contextlib.suppress(ValueError):
                    arguments = json.loads(arguments)
            return "Tool", f"{content.get('name', 'tool')}({_compact(arguments)})"
        return "Tool", _compact(content)
    if role == "tool_response":
        return "Tool result", _compact(content)
    speaker = _SPEAKERS.get(role, role.replace("_", " ").capitalize() or "Unknown")
    return speaker, _compact(content) if content is not None else ""


def turn_line(entry: dict[str, Any], *, limit: int = 300) -> str:
    """`*Agent:*  what was said`, what was said escaped and at most `limit` characters so."""
    speaker, said = turn_parts(entry)
    return f"*{escaped(trim(speaker, 40), 60)}:*  {escaped(said, limit)}"


def snippet(entries: list[dict[str, Any]], *, head: int = 2, tail: int = 2) -> str:
    """First and last turns with a count of what lies between."""
    if not entries:
        return "_No transcript was recorded._"
    if len(entries) <= head + tail + 1:
        return "\n".join(turn_line(entry) for entry in entries)
    hidden = len(entries) - head - tail
    lines = [turn_line(entry) for entry in entries[:head]]
    lines.append(f"    …  ({plural(hidden, 'more turn')})")
    lines.extend(turn_line(entry) for entry in entries[-tail:])
    return "\n".join(lines)
