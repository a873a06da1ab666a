"""`/testcall audit`: who did what to a run, a batch or in a channel, newest first, one line
per event: `Dec 1 14:05 · @maria · started run 7110 · agent 12`."""

from __future__ import annotations

from typing import Any

from bot.audit import Trail
from bot.blocks.admin import WORDS, channel_text
from bot.blocks.common import (
    SECTION_LIMIT,
    SLACK_CHANNEL_ID,
    SLACK_USER_ID,
    context,
    escape,
    mention,
    message,
    money,
    when,
)
from bot.blocks.common import section as section_block
from storage.models import AuditEvent

# What each action did, to its subject (`{}`).
_PHRASES = {
    "consented": "consented to {}",
    "launched": "started {}",
    "launch_failed": "{} did not start",
    "launch_unclear": "unclear whether {} started",
    "cancelled": "cancelled {}",
    "expired": "pressed Start too late on {}",
    "flagged": "flagged {} for review",
    "blessed": "blessed {}",
    "alias_set": "set {}",
    "alias_removed": "removed {}",
    "suite_imported": "imported {}",
    "suite_deleted": "deleted {}",
    "smoke_suite_set": "made {} a smoke suite",
    "over_budget": "{} stopped at a spend cap",
    "approved": "approved {} over a spend cap",
    "declined": "declined {} over a spend cap",
    "budget_set": "set {}",
    "budget_cleared": "cleared {}",
    "permission_set": "changed {}",
}
_CAPABILITY_WORDS: dict[str, str] = {str(key): words for key, words in WORDS.items()}
SETTINGS_MARK = "⚙️"


def who(user_id: str) -> str:
    """A Slack user as a mention; anyone else (the CLI, a build) by name."""
    return mention(user_id) if SLACK_USER_ID.match(user_id) else escape(user_id or "someone")


def subject(event: AuditEvent) -> str:
    key = event.subject_id
    match event.subject_kind:
        case "launch":
            return "a test call"
        case "run":
            return f"run {escape(key)}"
        case "batch" | "compare":
            return f"{event.subject_kind} {escape(key[:8])}"
        case "permission":
            capability, _, channel = key.partition(":")
            words = _CAPABILITY_WORDS.get(capability, escape(capability))
            where = f" in {channel_text(channel)}" if SLACK_CHANNEL_ID.match(channel) else ""
            return f"who may {words}{where}"
    return f"{event.subject_kind} `{escape(key)}`"


def cost(event: AuditEvent) -> str:
    if event.cost_cents is None:
        return "no estimate yet" if event.estimated else ""
    return ("~" if event.estimated else "") + money(event.cost_cents)


def line(event: AuditEvent) -> str:
    what = _PHRASES.get(event.action, event.action.replace("_", " ") + " {}").format(subject(event))
    if event.settings_change:
        what = f"{SETTINGS_MARK} {what}"
    parts = [when(event.at), who(event.user_id), what, escape(event.detail), cost(event)]
    return " · ".join(part for part in parts if part)


def _sections(lines: list[str]) -> list[dict[str, Any]]:
    """The lines in as few sections as Slack's section limit allows."""
    chunks: list[list[str]] = [[]]
    for text in lines:
        if chunks[-1] and len("\n".join([*chunks[-1], text])) > SECTION_LIMIT:
            chunks.append([])
        chunks[-1].append(text)
    return [section_block("\n".join(chunk)) for chunk in chunks if chunk]


def audit_trail(trail: Trail) -> dict[str, Any]:
    """The trail as an ephemeral reply: a heading, a line per event, newest first."""
    about = escape(trail.about) if trail.about else "this channel"
    heading = f"*Audit trail of {about}*"
    if not trail.events:
        empty = f"Nothing is recorded for {about} yet."
        return message(
            f"Audit trail of {about}: nothing recorded yet.",
            [section_block(f"{heading}\n{empty}")],
        )
    count = len(trail.events)
    note = "Newest first; times in your time zone."
    if trail.more:
        note = (
            f"The {count} most recent, newest first; `thunderbot audit` on the bot's host "
            "exports them all."
        )
    blocks = [section_block(heading), *_sections([line(e) for e in trail.events]), context(note)]
    plural = "event" if count == 1 else "events"
    return message(f"Audit trail of {about}: {count} {plural}", blocks)
