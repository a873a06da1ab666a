"""Messages about messages: the note a person gets when Slack would not take something the bot
had to show them, and the shortened form of a message Slack refused as too long."""

from __future__ import annotations

from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block

from bot.blocks.common import context, cut_mrkdwn, escape, message, section
from bot.slack_errors import Problem, SlackFailure

SHORTENED_BLOCK_ID = "thunderbot_shortened"
_ROLES = {"card": "card", "result": "result", "summary": "summary", "note": "note"}
_OWNERS = {"run": "test call run", "launch": "test call", "batch": "batch"}
_WHAT_TO_DO = {
    Problem.NO_CHANNEL: "If the channel is private or I was removed, invite me with "
    "`/invite @thunderbot`; if it was archived or deleted, run the test again elsewhere.",
    Problem.TOO_LONG: "Open the *Transcript* or the App Home tab for the whole result.",
    Problem.TRANSIENT: "Slack kept failing for a while; the outcome is in my App Home tab.",
    Problem.REFUSED: "Tell whoever runs thunderbot; the outcome is in my App Home tab.",
    Problem.RATE_LIMITED: "Slack kept asking me to slow down; the outcome is in my App Home tab.",
}


def undeliverable(
    owner_kind: str, owner_id: str, role: str, channel: str, failure: SlackFailure
) -> dict[str, Any]:
    """Told once, in a direct message, to the person whose run could not be shown."""
    what = f"the {_ROLES.get(role, role)} of {_OWNERS.get(owner_kind, owner_kind)} {owner_id}"
    where = f"<#{channel}>" if channel[:1] in {"C", "G"} else "the channel"
    text = (
        f"I couldn't post {what} in {where}: Slack said `{escape(failure.code)}`. "
        f"{_WHAT_TO_DO.get(failure.problem, '')} My App Home tab lists your recent test calls."
    )
    return message(text.replace("`", ""), [section(f"⚠️ {text}")])


def shortened(payload: dict[str, Any], code: str) -> dict[str, Any]:
    """A version of a message Slack refused that is always valid: its text, cut well inside the
    limits, and its buttons (when they pass Block Kit's own checks)."""
    whole = " ".join(str(payload.get("text") or "A message from thunderbot.").split())
    text = cut_mrkdwn(whole, 2800)  # mrkdwn already: never cut inside an escape or a link
    blocks = [
        section(text),  # already mrkdwn, escaped by the builder that made it
        {
            **context(f"Shortened: Slack refused the full message ({escape(code)})."),
            "block_id": SHORTENED_BLOCK_ID,
        },
    ]
    blocks += [block for block in payload.get("blocks") or [] if _valid_actions(block)]
    return message(text, blocks[:5])


def is_shortened(payload: dict[str, Any]) -> bool:
    return any(b.get("block_id") == SHORTENED_BLOCK_ID for b in payload.get("blocks") or [])


def _valid_actions(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "actions":
        return False
    try:
        parsed = Block.parse(block)
        if parsed is None:
            return False
        parsed.validate_json()
    except (SlackObjectFormationError, KeyError, TypeError, ValueError):
        return False
    return len(str(block)) < 4000
