"""`/testcall`: parse, then answer in the ack (ephemeral, only to the person who typed it)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot import launch, targets
from bot.blocks import replies
from bot.commands import (
    USAGE,
    AliasList,
    AliasRemove,
    AliasSet,
    CommandError,
    HelpCommand,
    RunCommand,
    parse_command,
)
from handlers.context import services_of

COMMAND = "/testcall"


async def handle_testcall(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    team_id = command.get("team_id", "")
    user_id = command["user_id"]
    try:
        parsed = parse_command(command.get("text", ""))
        if isinstance(parsed, RunCommand):
            proposed, costs = launch.propose(
                services,
                team_id=team_id,
                channel_id=command["channel_id"],
                user_id=user_id,
                command=parsed,
            )
            answer = replies.confirmation(proposed, costs)
        elif isinstance(parsed, AliasSet):
            answer = targets.set_alias(
                services, team_id=team_id, name=parsed.name, target=parsed.target, user_id=user_id
            )
        elif isinstance(parsed, AliasList):
            answer = targets.list_aliases(services, team_id)
        elif isinstance(parsed, AliasRemove):
            answer = targets.remove_alias(services, team_id, parsed.name)
        else:
            assert isinstance(parsed, HelpCommand)
            answer = replies.help_message()
    except CommandError as error:
        answer = replies.refusal(error.problem, error.usage)
    except launch.UnknownAlias as error:
        answer = replies.refusal(
            f'I don\'t know the alias "{error.name}". Save it first with /testcall alias set '
            f"{error.name} agent:<id>, or name the target directly, like agent:12.",
            USAGE["run"],
        )
    await ack(**answer)


def register(bolt: AsyncApp) -> None:
    bolt.command(COMMAND)(handle_testcall)
