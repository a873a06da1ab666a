"""Modal submissions: the review flag."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot import audit, batches, ids, launch, lookup, permissions, reviews, suite_admin
from bot.blocks import batches as batch_blocks
from bot.blocks import suite_replies
from bot.blocks.common import trim
from bot.commands import parse_batch_form
from bot.interactive import download_text, show_ephemeral, tell
from bot.routing import Route, decode, unreadable
from bot.suites import SuiteError, parse_suite, suite_record
from handlers.context import services_of
from storage import runs as run_store


def _route(view: dict[str, Any]) -> Route:
    """What the submitted modal is about (the one place private_metadata is read)."""
    return decode(view.get("private_metadata"))


def _flag_input(view: dict[str, Any]) -> reviews.FlagInput:
    state = view.get("state", {}).get("values", {})

    def value(block_id: str) -> dict[str, Any]:
        found: dict[str, Any] = state.get(block_id, {}).get(ids.INPUT_VALUE) or {}
        return found

    option = value(ids.FLAG_SEVERITY).get("selected_option") or {}
    return reviews.FlagInput(
        title=value(ids.FLAG_TITLE).get("value") or "",
        severity=option.get("value") or "warning",
        description=value(ids.FLAG_DESCRIPTION).get("value") or "",
        turn=value(ids.FLAG_TURN).get("value") or "",
    )


async def handle_flag_submission(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    run_id = _route(view).run_id
    run = run_store.get_run(services.db, run_id) if run_id is not None else None
    if run is None or run.call_id is None:
        named = unreadable(view.get("private_metadata"))
        problem = "I have no record of this test call any more."
        if named:
            problem = f"I have no test call {named}: that id is beyond any the bot keeps."
        await ack(response_action="errors", errors={ids.FLAG_TITLE: problem})
        return
    form, errors = reviews.check_flag(services, run, _flag_input(view))
    if form is None:
        await ack(response_action="errors", errors=errors)
        return
    refused = await permissions.flag_refusal(services, run, form.severity, body["user"]["id"])
    if refused is not None:
        await ack(response_action="errors", errors={ids.FLAG_SEVERITY: refused})
        return
    await ack()
    await reviews.file_flag(services, run, form, body["user"]["id"])


def _inputs(view: dict[str, Any]) -> dict[str, str]:
    """Every input of a submitted form by block id: typed text, or the chosen option."""
    values: dict[str, str] = {}
    for block_id, block in view.get("state", {}).get("values", {}).items():
        state = block.get(ids.INPUT_VALUE) or {}
        option = state.get("selected_option") or {}
        values[block_id] = str(state.get("value") or option.get("value") or "")
    return values


def _attached_file(view: dict[str, Any], block_id: str) -> dict[str, Any] | None:
    """The first file a person attached in a form's file input, if any."""
    state = view.get("state", {}).get("values", {}).get(block_id, {}).get(ids.INPUT_VALUE) or {}
    files = state.get("files") or []
    return files[0] if files and isinstance(files[0], dict) else None


def _download_url(file: dict[str, Any]) -> str:
    return str(file.get("url_private_download") or file.get("url_private") or "")


FILE_WAIT_SECONDS = 2.0

_BATCH_FIELDS = {
    "target": ids.BATCH_TARGET,
    "stagger": ids.BATCH_STAGGER,
    "repeat": ids.BATCH_REPEAT,
    "prompts": ids.BATCH_PROMPTS,
}


async def handle_batch_submission(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    given = _inputs(view)
    command, problems = parse_batch_form(
        target=given.get(ids.BATCH_TARGET, ""),
        direction=given.get(ids.BATCH_DIRECTION, ""),
        stagger=given.get(ids.BATCH_STAGGER, ""),
        repeat=given.get(ids.BATCH_REPEAT, ""),
        prompts=given.get(ids.BATCH_PROMPTS, ""),
    )
    channel = _route(view).channel
    if command is None or channel is None:
        errors = {_BATCH_FIELDS[name]: text for name, text in problems.items()}
        await ack(response_action="errors", errors=errors or {ids.BATCH_TARGET: "Try again."})
        return
    user_id = body["user"]["id"]
    team_id = body.get("team", {}).get("id", "")
    try:
        await permissions.require(
            services, "start", team_id=team_id, channel_id=channel, user_id=user_id
        )
        target_type, target_id, _ = launch.resolve_target(services, team_id, command.target)
        await lookup.look_up(services, target_type, target_id)
        proposal = batches.propose_batch(
            services, team_id=team_id, channel_id=channel, user_id=user_id, command=command
        )
    except launch.UnknownAlias as error:
        await ack(
            response_action="errors",
            errors={ids.BATCH_TARGET: f'I don\'t know the alias "{error.name}".'},
        )
        return
    except lookup.UnknownTarget as error:
        await ack(response_action="errors", errors={ids.BATCH_TARGET: str(error)})
        return
    except permissions.NotAllowed as error:
        await ack(response_action="errors", errors={ids.BATCH_TARGET: error.plain})
        return
    await ack()
    confirmation = batch_blocks.confirmation(*proposal)
    if not await show_ephemeral(services, channel, user_id, confirmation):
        # Where Slack won't show it (a private channel the bot is not in), a direct message.
        services.outbox.show(("batch", proposal[0].id, "confirmation"), user_id, confirmation)


async def handle_suite_import(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    given = _inputs(view)
    name = given.get(ids.SUITE_NAME, "").strip() or None
    user_id = body["user"]["id"]
    attached = _attached_file(view, ids.SUITE_FILE)
    text, filename = given.get(ids.SUITE_JSON, ""), None
    if attached is not None:
        filename = str(attached.get("name") or "suite.json")
        # Before the ack, which Slack awaits for 3 s: a slow download is refused, not waited.
        downloaded, problem = await download_text(
            services, _download_url(attached), timeout=FILE_WAIT_SECONDS
        )
        if downloaded is None:
            await ack(
                response_action="errors",
                errors={ids.SUITE_FILE: f"I couldn't read {filename}: {problem}."},
            )
            return
        text = downloaded
    elif not text.strip():
        await ack(
            response_action="errors",
            errors={ids.SUITE_JSON: "Attach the suite file, or paste it here."},
        )
        return
    try:
        suite = parse_suite(text, name=name, filename=filename)
    except SuiteError as error:
        block = ids.SUITE_FILE if attached is not None else ids.SUITE_JSON
        if "name" in str(error).split(":")[0]:
            block = ids.SUITE_NAME
        await ack(response_action="errors", errors={block: trim(str(error), 2000)})
        return
    channel = _route(view).channel
    where = audit.Where(user_id, body.get("team", {}).get("id", ""), channel or "")
    _, replaced = suite_admin.import_suite(
        services.db, suite_record(suite, created_by=user_id), where
    )
    await ack()
    if channel is not None:
        note = suite_replies.imported(suite, replaced is not None)
        await tell(services, channel, user_id, note)


def register(bolt: AsyncApp) -> None:
    bolt.view(ids.FLAG_MODAL)(handle_flag_submission)
    bolt.view(ids.BATCH_MODAL)(handle_batch_submission)
    bolt.view(ids.SUITE_IMPORT_MODAL)(handle_suite_import)
