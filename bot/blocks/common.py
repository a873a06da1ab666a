"""Formatting shared by the Block Kit builders: escaping, trimming, counts, money, time,
scores, targets and links to messages."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

SECTION_LIMIT = 3000
NAME_LIMIT = 80  # a target's name as ThunderPhone gives it, however long
_END_REASONS = {
    "caller_hangup": "caller hung up",
    "user_hangup": "caller hung up",
    "agent_end": "agent ended the call",
    "ai_hangup": "agent ended the call",
    "transfer": "transferred",
    "timeout": "timed out",
    "error": "ended with an error",
}


def escape(text: str) -> str:
    """Escape the three characters mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def trim(text: str, limit: int) -> str:
    """Plain text on one line, cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# What a cut at the end of mrkdwn may have split: an escape (`&amp;`) or a link, a mention or a
# date (`<…>`, only ever the bot's own, since everything else is escaped).
_BROKEN_ENTITY = re.compile(r"&[a-z]{0,3}$")
EMPTY = "…"  # what stands in for a text with nothing to show, which Slack would refuse


def cut_mrkdwn(text: str, limit: int) -> str:
    """mrkdwn cut to at most `limit` characters, an ellipsis at the cut, never inside an escape
    or a link; never empty."""
    if len(text) > limit:
        head = _BROKEN_ENTITY.sub("", text[: limit - 1])
        opened = head.rfind("<")
        if opened > head.rfind(">"):
            head = head[:opened]
        text = head.rstrip() + "…"
    return text if text.strip() else EMPTY


def escaped(text: str, limit: int) -> str:
    """User or transcript text on one line, escaped, within `limit` characters once escaped."""
    return cut_mrkdwn(escape(trim(text, limit)), limit)


# Slack's ids as the bot stores them: people, user groups, channels (C, G, or D for a DM).
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
SLACK_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
SLACK_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def mention(user_id: str) -> str:
    return f"<@{user_id}>"


def parse_time(value: str | datetime | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def clock(value: str | datetime | None) -> str:
    """A time each reader sees in their own time zone (UTC in the fallback)."""
    moment = parse_time(value)
    if moment is None:
        return ""
    fallback = moment.astimezone(UTC).strftime("%H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{time}}|{fallback}>"


def when(value: str | datetime | None) -> str:
    """A day and a time each reader sees in their own time zone: `today 14:05`, `yesterday
    09:30`, `Dec 1 14:05` (in UTC in the fallback)."""
    moment = parse_time(value)
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    fallback = f"{utc:%b} {utc.day} {utc:%H:%M} UTC"
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 run`, `2 runs`, `0 runs`; `many` for a noun whose plural is not noun + s."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def last_runs(count: int) -> str:
    """`the last run`, `the last 8 runs`: what an estimate is the average of."""
    return "the last run" if count == 1 else f"the last {count} runs"


def duration(seconds: int | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(max(int(seconds), 0), 60)
    return f"{minutes}:{rest:02d}"


def money(cents: int | float | None) -> str:
    if cents is None:
        return ""
    return f"${cents / 100:,.2f}"


def percent(score: float | None) -> str:
    return "" if score is None else f"{round(score * 100)}%"


def end_reason(reason: str | None) -> str:
    if not reason:
        return ""
    return _END_REASONS.get(reason, reason.replace("_", " "))


def target_plain(target_type: str, target_id: int, name: str = "") -> str:
    """`Support agent (agent 12)` when the name is known, `agent 12` when not, `Main line
    (number 34)` for a phone number: the one way a target is named, as plain text (a terminal,
    a chart, a refusal escaped later)."""
    noun = "agent" if target_type == "agent" else "number"
    reference = f"{noun} {target_id}"
    name = trim(name, NAME_LIMIT) if name else ""
    return f"{name} ({reference})" if name else reference


def target_text(target_type: str, target_id: int, name: str = "", *, alias: str = "") -> str:
    """`target_plain` as mrkdwn, the name escaped. `alias`, the short name the person typed,
    follows when given and not the name itself: `Support agent (agent 12), alias support`."""
    text = escape(target_plain(target_type, target_id, name))
    alias = alias.strip()
    if alias and ":" not in alias and alias.casefold() != " ".join(name.split()).casefold():
        text += f", alias {escape(alias)}"
    return text


def thread_link(channel: str, ts: str, thread_ts: str | None = None) -> str:
    """A link to a message, built without asking Slack: Slack sends
    `https://slack.com/archives/…` on to the reader's workspace. A reply (`thread_ts`: its
    thread's first message) opens in its thread."""
    link = f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"
    if thread_ts and thread_ts != ts:
        link += f"?thread_ts={thread_ts}&cid={channel}"
    return link


def linked(text: str, url: str | None) -> str:
    """`text` (mrkdwn without links of its own) as a link to `url` (its `&` escaped, as Slack
    writes links), or as it is without one."""
    return f"<{escape(url)}|{text}>" if url else text


_LINK = re.compile(r"<https?://[^|<>]*\|([^<>]*)>")


def unlinked(text: str) -> str:
    """mrkdwn with each link written as its words, for a notification's plain fallback."""
    return _LINK.sub(r"\1", text)


def run_ref(run_id: int | None, url: str | None = None) -> str:
    """`run 7110`, a link to the run's thread when there is one."""
    return linked(f"run {run_id}", url)


def direction_text(direction: str, mode: str) -> str:
    return f"{direction} · {'SIP loopback' if mode == 'sip' else 'bot-to-bot'}"


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": trim_block(text)},
        **extra,
    }


def trim_block(text: str, limit: int = SECTION_LIMIT) -> str:
    """Keep line breaks, cut to Slack's section limit (never inside an escape or a link)."""
    return cut_mrkdwn(text, limit)


def context(*texts: str) -> dict[str, Any]:
    shown = [t for t in texts if t.strip()] or [EMPTY]
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": trim_block(t, 2000)} for t in shown][:10],
    }


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def actions(block_id: str, *elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": block_id, "elements": list(elements)}


def message(text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """A message payload: blocks plus the plain-text fallback notifications read."""
    return {"text": cut_mrkdwn(" ".join(text.split()), 3000), "blocks": blocks[:50]}
