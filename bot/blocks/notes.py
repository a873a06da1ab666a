"""Short ephemeral notes to one person (mrkdwn text), and the card line of a launch called off."""

from __future__ import annotations

from typing import Any

from bot.blocks.common import clock, context, escape, mention, message, section, unlinked

NOT_STARTED = "ThunderPhone has no record of this run, so nothing was charged"
NOT_SENT_AFTER_STOP = (
    "the bot was restarted before it sent the call to ThunderPhone, so nothing was charged"
)
NOT_SENT_UNRECORDED = (
    "I couldn't record that I was sending it to ThunderPhone, so I didn't send it; "
    "nothing was charged"
)


def window_not_opened() -> str:
    return "Slack didn't let me open that window in time. Press the button again."


def already_flagged(user_id: str | None) -> str:
    who = mention(user_id) if user_id else "someone"
    return f"This call was already flagged for review by {who}."


def flag_not_filed(reason: str) -> str:
    return f"I couldn't file the review flag. {escape(reason)}"


def called_off_status(reason: str) -> str:
    return f"❌ Did not start · {reason[:1].upper()}{reason[1:]}."


def called_off(decided_at: str | None, reason: str) -> str:
    return (
        f"The test call you started at {clock(decided_at)} did not start: {reason}. "
        "Run the command again if you still need it."
    )


def direct_note(channel: str, text: str) -> dict[str, Any]:
    """A note meant for one person in `channel`, sent to them directly because Slack would not
    show it to them there (`text` is mrkdwn, already escaped)."""
    where = f"<#{channel}>" if channel[:1] in {"C", "G"} else "the channel"
    return message(
        unlinked(text).replace("*", ""),
        [section(text), context(f"About {where}: Slack wouldn't let me show you this there.")],
    )
