"""`/testcall admin` and the refusals of privacy and permissions: who may do what, where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.blocks.common import (
    SLACK_CHANNEL_ID,
    SLACK_GROUP_ID,
    SLACK_USER_ID,
    context,
    escape,
    mention,
    message,
    section,
    unlinked,
    when,
)
from bot.commands import CAPABILITIES, USAGE, Capability
from storage.permissions import WORKSPACE, PermissionRule

WORDS: dict[Capability, str] = {
    "start": "start test calls",
    "bless": "bless baselines",
    "critical": "file critical reports",
}
HEADINGS: dict[Capability, str] = {
    "start": "Start test calls",
    "bless": "Bless baselines",
    "critical": "File critical reports",
}


def person(ident: str) -> str:
    """A Slack user or user group as Slack shows it (`@maria`, `@qa-leads`)."""
    if SLACK_USER_ID.match(ident):
        return mention(ident)
    if SLACK_GROUP_ID.match(ident):
        return f"<!subteam^{ident}>"
    return escape(ident)


def people_text(ids: Sequence[str], *, limit: int = 10) -> str:
    """`@a`, `@a and @b`, `@a, @b and @c`, `@a, @b and 3 more`."""
    shown = [person(ident) for ident in ids[:limit]]
    if len(ids) > limit:
        shown.append(f"{len(ids) - limit} more")
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def channel_text(channel_id: str) -> str:
    if channel_id.startswith("D"):
        return "a direct message"
    return f"<#{channel_id}>" if SLACK_CHANNEL_ID.match(channel_id) else escape(channel_id)


def place_text(channel_id: str) -> str:
    """Where a rule applies: `in #voice-qa`, or `in this workspace`."""
    return "in this workspace" if channel_id == WORKSPACE else f"in {channel_text(channel_id)}"


def refused(text: str) -> dict[str, Any]:
    """An ephemeral refusal whose `text` is mrkdwn the bot wrote (mentions and channels
    linked; anything a person typed already escaped)."""
    return message(unlinked(text), [section(text)])


def who_text(rule: PermissionRule | None) -> str:
    if rule is None or rule.everyone:
        return "everyone"
    return "only " + (people_text([*rule.users, *rule.groups]) or "nobody")


def _rule_line(rule: PermissionRule) -> str:
    set_by = f" (set by {mention(rule.set_by)} {when(rule.set_at)})" if rule.set_by else ""
    return f"{who_text(rule)}{set_by}"


def admin_show(rules: Sequence[PermissionRule], admins: Sequence[str]) -> dict[str, Any]:
    """Every rule of the workspace, by capability: the workspace's, then each channel's."""
    lines = ["*Who may do what*"]
    for capability in CAPABILITIES:
        own = [rule for rule in rules if rule.capability == capability]
        workspace = next((rule for rule in own if rule.channel_id == WORKSPACE), None)
        head = _rule_line(workspace) if workspace else "everyone (no rule set)"
        lines.append(f"• *{HEADINGS[capability]}*: {head}")
        for rule in own:
            if rule.channel_id != WORKSPACE:
                lines.append(f"   in {channel_text(rule.channel_id)}: {_rule_line(rule)}")
    admin_line = (
        f"*Admins* (they always may, and change these): {people_text(sorted(admins))}"
        if admins
        else "*Admins*: none set; `THUNDERBOT_ADMINS` on the bot's host names them."
    )
    lines.append(admin_line)
    blocks = [section("\n".join(lines)), context(f"Usage: `{escape(USAGE['admin'])}`")]
    return message("Who may start test calls, bless baselines and file critical reports", blocks)


def admin_saved(
    capability: Capability,
    channel_id: str,
    now: PermissionRule | None,
    before: PermissionRule | None,
    *,
    falls_back_to: PermissionRule | None = None,
) -> dict[str, Any]:
    """What a change of a rule did; `now` None: the rule was removed, and `falls_back_to`
    applies instead (the workspace's rule, for a channel)."""
    where = place_text(channel_id)
    if now is None:
        fallback = (
            f"the workspace's rule applies: {who_text(falls_back_to)}"
            if channel_id != WORKSPACE
            else "everyone may"
        )
        text = f"Removed the rule on who may {WORDS[capability]} {where}: {fallback}."
    else:
        text = f"Saved: {who_text(now)} may {WORDS[capability]} {where}"
        if before is not None:
            text += f" (was {who_text(before)})"
        text += "."
        if not now.everyone:
            text += " Admins always may."
    return message(unlinked(text), [section(text)])
