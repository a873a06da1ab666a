"""`/testcall`: parse, then answer in the ack (ephemeral, only to the person who typed it), or
open a form when the command asked for one."""

from __future__ import annotations

from typing import Any, TypedDict

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot import (
    admin,
    audit,
    batches,
    budget_actions,
    compare,
    launch,
    lookup,
    permissions,
    privacy,
    smoke,
    targets,
    trend,
)
from bot.blocks import batches as batch_blocks
from bot.blocks import replies, suite_replies
from bot.blocks.admin import refused
from bot.blocks.audit import audit_trail
from bot.blocks.common import plural
from bot.blocks.modals import batch_modal, suite_import_modal
from bot.commands import (
    USAGE,
    AdminSet,
    AdminShow,
    AliasList,
    AliasRemove,
    AliasSet,
    AuditCommand,
    BatchCommand,
    BudgetClear,
    BudgetSet,
    BudgetShow,
    Command,
    CommandError,
    CompareCommand,
    HelpCommand,
    RunCommand,
    SmokeCommand,
    SuiteDelete,
    SuiteExport,
    SuiteImport,
    SuiteList,
    SuiteRun,
    SuiteShow,
    SuiteSmoke,
    SuiteTrend,
    Target,
    parse_command,
)
from bot.interactive import open_view, tell, upload_file
from bot.services import Services
from bot.suites import dump_suite, suite_from_record
from handlers.context import services_of
from storage import suites as suite_store

COMMAND = "/testcall"


async def handle_testcall(
    ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    exporting: str | None = None
    trending: SuiteTrend | None = None
    try:
        parsed = parse_command(command.get("text", ""))
        await permissions.require_for_command(services, parsed, **_where(command))
        form = _form(parsed, command["channel_id"])
        if form is not None:
            await ack()
            await open_view(services, command["trigger_id"], form)
            return
        checked = await lookup.look_up_all(services, _targets_named(services, command, parsed))
        readable = command["channel_id"]
        if isinstance(parsed, AuditCommand):
            readable = await privacy.audit_channel(
                services, parsed, user_id=command["user_id"], channel_id=command["channel_id"]
            )
        answer = await _answer(services, command, parsed, checked, audit_channel=readable)
        if isinstance(parsed, SuiteExport):
            exporting = parsed.name
        if isinstance(parsed, SuiteTrend):
            trending = parsed
    except CommandError as error:
        answer = replies.refusal(error.problem, error.usage)
    except (permissions.NotAllowed, privacy.Hidden) as error:
        answer = refused(error.text)
    except lookup.UnknownTarget as error:
        answer = replies.refusal(str(error), USAGE["run"])
    except launch.UnknownAlias as error:
        answer = replies.refusal(
            f'I don\'t know the alias "{error.name}". Save it first with /testcall alias set '
            f"{error.name} agent:<id>, or name the target directly, like agent:12.",
            USAGE["run"],
        )
    except batches.UnknownSuite as error:
        answer = replies.refusal(
            f'There is no suite "{error.name}". See /testcall suite list.', USAGE["suite"]
        )
    except audit.AuditRefused as error:
        answer = replies.refusal(error.problem, USAGE["audit"])
    except batches.SuiteNeedsTarget as error:
        answer = replies.refusal(
            f'Suite "{error.name}" has no default target: name one, like /testcall suite run '
            f"{error.name} agent:12.",
            USAGE["suite"],
        )
    await ack(**answer)
    if exporting is not None:
        await _export(services, command, exporting)
    if trending is not None:
        await trend.post(
            services,
            team_id=command.get("team_id", ""),
            channel_id=command["channel_id"],
            user_id=command["user_id"],
            name=trending.name,
            target=trending.target,
            response_url=command.get("response_url"),
        )


def _where(command: dict[str, Any]) -> dict[str, str]:
    return {
        "team_id": command.get("team_id", ""),
        "channel_id": command["channel_id"],
        "user_id": command["user_id"],
    }


def _form(parsed: Command, channel_id: str) -> dict[str, Any] | None:
    """The modal a command opens instead of answering, if any."""
    if isinstance(parsed, BatchCommand) and not parsed.prompts:
        return batch_modal(channel_id, target=parsed.target.label)
    if isinstance(parsed, SuiteImport):
        return suite_import_modal(channel_id)
    return None


def _targets_named(
    services: Services, command: dict[str, Any], parsed: Command
) -> list[lookup.TargetKey]:
    """The agents and numbers a command would call (or name, for an alias), to be looked up
    with ThunderPhone before anyone is asked to consent. Raises UnknownAlias."""
    named: list[Target | None] = []
    if isinstance(parsed, RunCommand | BatchCommand | SmokeCommand | SuiteSmoke | AliasSet):
        named = [parsed.target]
    elif isinstance(parsed, CompareCommand):
        named = list(parsed.targets)
    elif isinstance(parsed, SuiteRun):
        record = suite_store.get_suite(services.db, parsed.name)
        default = suite_from_record(record).target if record is not None else None
        named = [parsed.target or default]
    team_id = command.get("team_id", "")
    keys = []
    for target in named:
        if target is not None:
            target_type, target_id, _ = launch.resolve_target(services, team_id, target)
            keys.append((target_type, target_id))
    return keys


class _Shown(TypedDict, total=False):
    name: str
    tier: str
    unchecked: str


def _as_shown(checked: dict[lookup.TargetKey, lookup.TargetInfo]) -> _Shown:
    """What a confirmation says about its one target: ThunderPhone's name and tier, or why it
    could not be asked."""
    if len(checked) != 1:
        return {}
    [info] = checked.values()
    return {"name": info.name, "tier": info.tier, "unchecked": info.unchecked}


async def _answer(
    services: Services,
    command: dict[str, Any],
    parsed: Command,
    checked: dict[lookup.TargetKey, lookup.TargetInfo],
    *,
    audit_channel: str,
) -> dict[str, Any]:
    team_id, user_id = command.get("team_id", ""), command["user_id"]
    where = {"team_id": team_id, "channel_id": command["channel_id"], "user_id": user_id}
    target = _as_shown(checked)
    if isinstance(parsed, RunCommand):
        proposed = await launch.propose(services, **where, command=parsed)
        return replies.confirmation(*proposed, **target)
    if isinstance(parsed, BatchCommand):
        proposal = batches.propose_batch(services, **where, command=parsed)
        return batch_blocks.confirmation(*proposal, **target)
    if isinstance(parsed, SuiteRun):
        proposal = batches.propose_suite_run(services, **where, command=parsed)
        return batch_blocks.confirmation(*proposal, **target)
    if isinstance(parsed, SmokeCommand):
        proposal = smoke.propose(services, **where, target=parsed.target)
        return batch_blocks.confirmation(*proposal, **target)
    if isinstance(parsed, SuiteSmoke):
        return smoke.mark(
            services,
            team_id=team_id,
            user_id=user_id,
            name=parsed.name,
            target=parsed.target,
            channel_id=command["channel_id"],
        )
    if isinstance(parsed, CompareCommand):
        return compare.propose(services, **where, command=parsed)
    if isinstance(parsed, SuiteTrend):
        if suite_store.get_suite(services.db, parsed.name) is None:
            raise batches.UnknownSuite(parsed.name)
        return replies.decided(f"Drawing the trend of suite `{parsed.name}` in this channel…")
    if isinstance(parsed, SuiteList):
        return suite_replies.suite_list(suite_store.list_suites(services.db))
    if isinstance(parsed, SuiteShow | SuiteExport | SuiteDelete):
        record = suite_store.get_suite(services.db, parsed.name)
        if record is None:
            raise batches.UnknownSuite(parsed.name)
        if isinstance(parsed, SuiteShow):
            return suite_replies.suite_details(suite_from_record(record))
        if isinstance(parsed, SuiteDelete):
            return suite_replies.confirm_delete(record.name, len(record.cases))
        return replies.decided(f"Exporting suite `{record.name}` as a file in this channel…")
    if isinstance(parsed, AliasSet):
        return targets.set_alias(services, **where, name=parsed.name, target=parsed.target)
    if isinstance(parsed, AliasList):
        return targets.list_aliases(services, team_id)
    if isinstance(parsed, AliasRemove):
        return targets.remove_alias(
            services, team_id, parsed.name, user_id=user_id, channel_id=command["channel_id"]
        )
    if isinstance(parsed, BudgetShow | BudgetSet | BudgetClear):
        return budget_actions.answer(services, parsed, **where)
    if isinstance(parsed, AuditCommand):
        return audit_trail(audit.find_trail(services.db, parsed, channel_id=audit_channel))
    if isinstance(parsed, AdminShow | AdminSet):
        return admin.answer(services, parsed, **where)
    assert isinstance(parsed, HelpCommand)
    return replies.help_message()


async def _export(services: Services, command: dict[str, Any], name: str) -> None:
    record = suite_store.get_suite(services.db, name)
    if record is None:
        return
    suite = suite_from_record(record)
    problem = await upload_file(
        services,
        command["channel_id"],
        filename=f"{suite.name}.json",
        content=dump_suite(suite),
        comment=f"Suite {suite.name}: {plural(len(suite.cases), 'case')}, exported by "
        f"<@{command['user_id']}>.",
    )
    if problem is not None:
        await tell(
            services,
            command["channel_id"],
            command["user_id"],
            f"I couldn't share the file here ({problem}). `thunderbot suite export {suite.name}` "
            "on the bot's host writes it too.",
            response_url=command.get("response_url"),
        )


def register(bolt: AsyncApp) -> None:
    bolt.command(COMMAND)(handle_testcall)
