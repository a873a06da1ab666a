"""Private stays private: a run's prompt, transcript, result and flags are shown only to the
person who started it and to the people in the channel it ran in (for a direct message, its
participants).

Slack is asked who is in a channel (`bot.people`, remembered for a minute). When it cannot
say (an error, a missing scope), only the person who started the run sees it, and a refusal
says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from bot.audit import home_of
from bot.commands import AuditCommand
from bot.services import Services
from storage.models import RunRecord


class Hidden(Exception):
    """Someone may not see a run; `text` (mrkdwn) says why."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True)
class Access:
    """Whether someone may see a run (or batch, or compare); `problem` is why Slack could not
    say who is in its channel, when it could not."""

    allowed: bool
    channel_id: str
    problem: str | None = None


async def access(services: Services, *, user_id: str, channel_id: str, started_by: str) -> Access:
    """Whether `user_id` may see what `started_by` started in `channel_id`."""
    if user_id == started_by:
        return Access(True, channel_id)
    return await member_access(services, user_id=user_id, channel_id=channel_id)


async def member_access(services: Services, *, user_id: str, channel_id: str) -> Access:
    """Whether Slack says `user_id` is in `channel_id`."""
    members = await services.people.channel_members(services.slack, channel_id)
    if not members.known:
        return Access(False, channel_id, members.problem)
    return Access(user_id in members.ids, channel_id)


async def run_access(services: Services, run: RunRecord, user_id: str) -> Access:
    return await access(
        services, user_id=user_id, channel_id=run.channel_id, started_by=run.started_by
    )


def place(channel_id: str) -> str:
    """A channel as a refusal names it: a direct message has no name to show."""
    return "a direct message" if channel_id.startswith("D") else f"<#{channel_id}>"


def refusal(what: str, seen: Access) -> str:
    """Why someone may not see `what` ("this test call", "run 7110"), in mrkdwn."""
    where = place(seen.channel_id)
    if seen.problem is not None:
        return (
            f"I couldn't ask Slack who is in {where} ({seen.problem}), so only the person who "
            f"started {what} can see it. If that lasts, ask an admin to check the bot's scopes "
            "(channels:read, groups:read, im:read, mpim:read)."
        )
    if seen.channel_id.startswith("D"):
        return f"{what.capitalize()} ran in a direct message: only the people in it can see it."
    return (
        f"{what.capitalize()} ran in {where}, a channel you are not in: only its members "
        "can see its prompt, transcript and result."
    )


async def visible_runs(
    services: Services, runs: Iterable[RunRecord], user_id: str
) -> tuple[list[RunRecord], dict[str, str]]:
    """The runs `user_id` may see, in order, and the channels Slack could not answer for
    (channel -> Slack's error): only the viewer's own runs from those are kept."""
    listed = list(runs)
    # Slack is asked about each channel once, all at once.
    others = list(dict.fromkeys(run.channel_id for run in listed if run.started_by != user_id))
    answers = await asyncio.gather(
        *(member_access(services, user_id=user_id, channel_id=c) for c in others)
    )
    seen = dict(zip(others, answers, strict=True))
    shown = [run for run in listed if run.started_by == user_id or seen[run.channel_id].allowed]
    problems = {
        channel: found.problem for channel, found in seen.items() if found.problem is not None
    }
    return shown, problems


async def audit_channel(
    services: Services, command: AuditCommand, *, user_id: str, channel_id: str
) -> str:
    """The channel whose trail `/testcall audit` may read for `command`, typed in
    `channel_id`: the channel of the run, batch or compare it names, for someone who may see
    it. Raises Hidden, or `bot.audit.AuditRefused` for an id that names nothing."""
    home = home_of(services.db, command)
    if home is None or home.channel_id == channel_id:
        return channel_id
    seen = await access(
        services, user_id=user_id, channel_id=home.channel_id, started_by=home.started_by
    )
    if not seen.allowed:
        raise Hidden(refusal(home.about, seen))
    return home.channel_id
