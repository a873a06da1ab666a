"""`/testcall`: parse, then answer in the ack (ephemeral, only to the person who typed it)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

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
from bot.runs import UnknownAlias, propose
from handlers.context import services_of
from storage import aliases
from storage.models import Alias

COMMAND = "/testcall"


async def handle_testcall(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    team_id = command.get("team_id", "")
    user_id = command["user_id"]
    try:
        parsed = parse_command(command.get("text", ""))
    except CommandError as error:
        await ack(**replies.refusal(error.problem, error.usage))
        return
    if isinstance(parsed, HelpCommand):
        await ack(**replies.help_message())
    elif isinstance(parsed, RunCommand):
        try:
            _, confirmation = propose(
                services,
                team_id=team_id,
                channel_id=command["channel_id"],
                user_id=user_id,
                command=parsed,
            )
        except UnknownAlias as error:
            await ack(
                **replies.refusal(
                    f'I don\'t know the alias "{error.name}". Save it first with '
                    f"/testcall alias set {error.name} agent:<id>, or name the target directly, "
                    "like agent:12.",
                    USAGE["run"],
                )
            )
            return
        await ack(**confirmation)
    elif isinstance(parsed, AliasSet):
        assert parsed.target.id is not None
        alias = aliases.save_alias(
            services.db,
            Alias(
                team_id=team_id,
                name=parsed.name,
                target_type=parsed.target.kind,
                target_id=parsed.target.id,
                created_by=user_id,
            ),
        )
        await ack(**replies.alias_saved(alias))
    elif isinstance(parsed, AliasList):
        await ack(**replies.alias_list(aliases.list_aliases(services.db, team_id)))
    elif isinstance(parsed, AliasRemove):
        if aliases.delete_alias(services.db, team_id, parsed.name):
            await ack(**replies.decided(f"Removed the alias `{parsed.name}`."))
        else:
            await ack(**replies.refusal(f'There is no alias "{parsed.name}".', USAGE["alias"]))


def register(bolt: AsyncApp) -> None:
    bolt.command(COMMAND)(handle_testcall)
