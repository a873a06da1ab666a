"""Short ephemeral notes to one person (mrkdwn text), and the card line of a launch called off."""

from __future__ import annotations

from bot.blocks.common import clock, escape, mention

NOT_STARTED = "ThunderPhone has no record of this run, so nothing was charged"


def window_not_opened() -> str:
    return "Slack didn't let me open that window in time. Press the button again."


def already_flagged(user_id: str | None) -> str:
    who = mention(user_id) if user_id else "someone"
    return f"This call was already flagged for review by {who}."


def flag_not_filed(reason: str) -> str:
    return f"I couldn't file the review flag. {escape(reason)}"


def called_off_status() -> str:
    return f"❌ Did not start · {NOT_STARTED}."


def called_off(decided_at: str | None) -> str:
    return (
        f"The test call you started at {clock(decided_at)} did not start: {NOT_STARTED}. "
        "Run the command again if you still need it."
    )
