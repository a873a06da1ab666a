"""Who may start test calls, bless baselines and file critical reports.

Admins (`THUNDERBOT_ADMINS`) always may, and set the rules from Slack (`/testcall admin`,
`bot.admin`). A rule gives a capability to everyone, or to listed people and Slack user
groups, in the whole workspace or in one channel (a channel's own rule wins there). No rule:
everyone may, so a fresh install works at once.

The check runs on every command and click that would start, bless or file a critical report,
not on who can see a button. A user group's members are asked of Slack (`bot.people`,
remembered for a minute); a group Slack cannot answer for counts nobody in it (fail closed),
and the refusal says so.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from bot.blocks.admin import WORDS, people_text, place_text
from bot.blocks.common import mention
from bot.commands import (
    BatchCommand,
    Capability,
    Command,
    CompareCommand,
    RunCommand,
    SmokeCommand,
    SuiteRun,
)
from bot.people import Members
from bot.privacy import run_access
from bot.services import Services
from storage import batches as batch_store
from storage import compares as compare_store
from storage import launches
from storage.models import RunRecord

# The commands that propose a paid run: each needs the start permission before anything is
# stored.
STARTING_COMMANDS = (RunCommand, BatchCommand, SuiteRun, SmokeCommand, CompareCommand)
Proposal = Literal["launch", "batch", "compare"]
# A rule's user groups are asked about before a slash command's ack, which Slack awaits for
# 3 s, and the target lookup (`bot.lookup`, up to 1.5 s) comes after: all the groups
# together get this long, and one Slack has not named by then counts nobody in it.
GROUPS_SECONDS = 1.0


class NotAllowed(Exception):
    """Someone may not do what they asked; `text` (mrkdwn) says why and what to do, `plain`
    says it in a line of plain text (for a form's error)."""

    def __init__(self, text: str, plain: str) -> None:
        super().__init__(plain)
        self.text = text
        self.plain = plain


def is_admin(services: Services, user_id: str) -> bool:
    return user_id in services.settings.admins


def admins_note(services: Services) -> str:
    """Who can change the rules, as a refusal ends."""
    admins = sorted(services.settings.admins)
    if not admins:
        return (
            "No admins are set yet: `THUNDERBOT_ADMINS` on the bot's host names them, and they "
            "change this with `/testcall admin`."
        )
    return f"An admin can change that with `/testcall admin`: {people_text(admins, limit=5)}."


async def check(
    services: Services, capability: Capability, *, team_id: str, channel_id: str, user_id: str
) -> NotAllowed | None:
    """None when `user_id` may `capability` in `channel_id`, else why not."""
    if is_admin(services, user_id):
        return None
    rule = services.rules.rule_for(team_id, capability, channel_id)
    if rule is None or rule.everyone or user_id in rule.users:
        return None
    answers = await _group_answers(services, rule.groups)
    if any(user_id in members.ids for members in answers.values()):
        return None
    unanswered = [
        (group, members.problem or "no answer")
        for group, members in answers.items()
        if not members.known
    ]
    allowed = people_text([*rule.users, *rule.groups], limit=8) or "nobody"
    where = place_text(rule.channel_id)
    text = f"Only {allowed} may {WORDS[capability]} {where}."
    for group, problem in unanswered:
        text += (
            f" I couldn't ask Slack who is in <!subteam^{group}> ({problem}), so for now I "
            "count nobody in it."
        )
    text += " " + admins_note(services)
    plain = f"You may not {WORDS[capability]} here; ask an admin."
    return NotAllowed(text, plain)


async def _group_answers(services: Services, groups: list[str]) -> dict[str, Members]:
    """Who is in each of `groups`, asked of Slack all at once, each within GROUPS_SECONDS: a
    group Slack has not named by then is not answered ("timeout", remembered briefly)."""
    asked = list(dict.fromkeys(groups))
    answers = await asyncio.gather(
        *(
            services.people.group_members(services.slack, group, seconds=GROUPS_SECONDS)
            for group in asked
        )
    )
    return dict(zip(asked, answers, strict=True))


async def require(
    services: Services, capability: Capability, *, team_id: str, channel_id: str, user_id: str
) -> None:
    """Raises NotAllowed unless `user_id` may `capability` in `channel_id`."""
    refused = await check(
        services, capability, team_id=team_id, channel_id=channel_id, user_id=user_id
    )
    if refused is not None:
        raise refused


async def require_for_command(
    services: Services, parsed: Command, *, team_id: str, channel_id: str, user_id: str
) -> None:
    """Before a command proposes a paid run (or opens the form that would): the start
    permission. Raises NotAllowed."""
    if isinstance(parsed, STARTING_COMMANDS):
        await require(services, "start", team_id=team_id, channel_id=channel_id, user_id=user_id)


def _proposal(services: Services, kind: Proposal, key: str) -> tuple[str, str, str] | None:
    """(team, channel, the person who asked) of a proposed launch, batch or compare."""
    db = services.db
    found = (
        launches.get_launch(db, key)
        if kind == "launch"
        else batch_store.get_batch(db, key)
        if kind == "batch"
        else compare_store.get_compare(db, key)
    )
    if found is None:
        return None
    return found.team_id, found.channel_id, found.user_id


async def click_refusal(
    services: Services, kind: Proposal, key: str, user_id: str, *, starting: bool
) -> NotAllowed | None:
    """Start or Cancel on a confirmation: only the person who asked may press it, and Start
    needs the start permission (checked again: it may have changed since). None: go ahead
    (a confirmation no longer on record is left to the decision, which says so)."""
    found = _proposal(services, kind, key)
    if found is None:
        return None
    team_id, channel_id, owner = found
    if user_id != owner:
        what = {"launch": "test call", "batch": "batch", "compare": "compare"}[kind]
        return NotAllowed(
            f"Only {mention(owner)}, who asked for this {what}, can start or cancel it. To run "
            "it yourself, type the command again.",
            "Only the person who asked for this can start or cancel it.",
        )
    if not starting:
        return None
    return await check(services, "start", team_id=team_id, channel_id=channel_id, user_id=user_id)


async def flag_refusal(
    services: Services, run: RunRecord, severity: str, user_id: str
) -> str | None:
    """Filing a review flag: the person must be able to see the run, and a critical report
    needs the critical permission in its channel. None: go ahead; else why not, as plain text
    for the form."""
    seen = await run_access(services, run, user_id)
    if not seen.allowed:
        if seen.problem is not None:
            return (
                f"I couldn't ask Slack who is in this run's channel ({seen.problem}), so only "
                "the person who started it can flag it."
            )
        return "Only the people in this run's channel can see it, and so flag it."
    if severity != "critical":
        return None
    refused = await check(
        services, "critical", team_id=run.team_id, channel_id=run.channel_id, user_id=user_id
    )
    if refused is None:
        return None
    return (
        "You may not file critical reports in this channel: choose warning or info, or ask one "
        "of the bot's admins."
    )
