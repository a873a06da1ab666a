"""Buttons: Start / Cancel on a confirmation (a test call, a batch, a compare); Flag,
Transcript, Run again on a result; Bless; deleting a suite."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import (
    audit,
    batches,
    budget_actions,
    compare,
    ids,
    launch,
    permissions,
    privacy,
    reviews,
    suite_admin,
)
from bot.blocks import batches as batch_blocks
from bot.blocks import compare as compare_blocks
from bot.blocks import replies, suite_replies
from bot.blocks.admin import refused
from bot.outcomes import AlreadyDecided, BatchAlreadyDecided
from bot.routing import Route, decode, unreadable
from handlers.context import services_of
from storage import batches as batch_store
from storage import runs as run_store
from storage.models import RunRecord


def _route(body: dict[str, Any]) -> Route:
    """What the clicked button is about (the one place a button's value is read)."""
    return decode(body["actions"][0].get("value"))


async def _refuse(respond: AsyncRespond, refusal: permissions.NotAllowed | str) -> None:
    """Tell only the person who clicked why not; the message they clicked stays as it is."""
    text = refusal if isinstance(refusal, str) else refusal.text
    await respond(response_type="ephemeral", replace_original=False, **refused(text))


def _decision(
    field: str,
    decide: Callable[..., Any],
    render: Callable[[Any], dict[str, Any]],
    gone: Any,
    kind: permissions.Proposal,
) -> Callable[..., Awaitable[None]]:
    """A Start or Cancel button on a confirmation of a `kind`: what it is about is read from
    the route's `field`, decided by `decide` (services, id, user), and its answer replaces the
    confirmation. A button whose id can't be read is answered as `gone`. Only the person who
    asked may press it, and Start needs the start permission."""
    starting = decide in (launch.start, batches.start, compare.start)

    async def handle(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        key = getattr(_route(body), field)
        outcome = gone
        if key is not None:
            user_id = body["user"]["id"]
            services = services_of(context)
            refusal = await permissions.click_refusal(
                services, kind, key, user_id, starting=starting
            )
            if refusal is not None:
                await _refuse(respond, refusal)
                return
            outcome = decide(services, key, user_id)
            if inspect.isawaitable(outcome):
                outcome = await outcome
            budget_actions.settle(services, kind, key, user_id)  # a held launch decided here
        await respond(replace_original=True, **render(outcome))

    return handle


handle_start = _decision(
    "launch_id", launch.start, replies.launch_outcome, AlreadyDecided(None), "launch"
)
handle_cancel = _decision(
    "launch_id", launch.cancel, replies.launch_outcome, AlreadyDecided(None), "launch"
)
handle_start_batch = _decision(
    "batch_id", batches.start, batch_blocks.outcome, BatchAlreadyDecided(None), "batch"
)
handle_cancel_batch = _decision(
    "batch_id", batches.cancel, batch_blocks.outcome, BatchAlreadyDecided(None), "batch"
)
# A compare's buttons carry its id in the route's batch_id.
handle_start_compare = _decision(
    "batch_id",
    compare.start,
    compare_blocks.outcome,
    compare.CompareAlreadyDecided(None),
    "compare",
)
handle_cancel_compare = _decision(
    "batch_id",
    compare.cancel,
    compare_blocks.outcome,
    compare.CompareAlreadyDecided(None),
    "compare",
)


def _run(context: AsyncBoltContext, route: Route) -> RunRecord | None:
    if route.run_id is None:
        return None
    return run_store.get_run(services_of(context).db, route.run_id)


async def _clicked_run(
    body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> RunRecord | None:
    """The run behind a result button, or None after telling the person it is gone, or that
    it is not theirs to see."""
    run = _run(context, _route(body))
    if run is None:
        named = unreadable(body["actions"][0].get("value"))
        await respond(response_type="ephemeral", replace_original=False, **replies.gone(named))
        return None
    seen = await privacy.run_access(services_of(context), run, body["user"]["id"])
    if not seen.allowed:
        await _refuse(respond, privacy.refusal(f"run {run.run_id}", seen))
        return None
    return run


async def handle_flag(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _clicked_run(body, respond, context)
    if run is not None and run.call_id is not None:
        await reviews.open_flag_modal(
            services_of(context),
            run,
            user_id=body["user"]["id"],
            trigger_id=body["trigger_id"],
            response_url=body.get("response_url"),
        )


async def handle_transcript(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _clicked_run(body, respond, context)
    if run is not None:
        await reviews.open_transcript(
            services_of(context),
            run,
            user_id=body["user"]["id"],
            trigger_id=body["trigger_id"],
            response_url=body.get("response_url"),
        )


async def handle_transcript_page(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await ack()
    route = _route(body)
    run = _run(context, route)
    if (
        run is not None
        and not (await privacy.run_access(services_of(context), run, body["user"]["id"])).allowed
    ):
        return
    if run is not None and route.page is not None:
        await reviews.show_transcript_page(
            services_of(context),
            run,
            route.page,
            view_id=body["view"]["id"],
            view_hash=body["view"].get("hash"),
        )


async def handle_run_again(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _clicked_run(body, respond, context)
    if run is None:
        return
    channel_id = (body.get("channel") or {}).get("id") or run.channel_id
    refusal = await permissions.check(
        services_of(context),
        "start",
        team_id=run.team_id,
        channel_id=channel_id,
        user_id=body["user"]["id"],
    )
    if refusal is not None:
        await _refuse(respond, refusal)
        return
    proposed, costs = await launch.propose_again(
        services_of(context), run, user_id=body["user"]["id"], channel_id=channel_id
    )
    await respond(
        response_type="ephemeral",
        replace_original=False,
        **replies.confirmation(proposed, costs, name=run.target_name),
    )


async def handle_bless(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    batch_id = _route(body).batch_id
    services = services_of(context)
    batch = batch_store.get_batch(services.db, batch_id) if batch_id is not None else None
    if batch is not None:
        refusal = await permissions.check(
            services,
            "bless",
            team_id=batch.team_id,
            channel_id=batch.channel_id,
            user_id=body["user"]["id"],
        )
        if refusal is not None:
            await _refuse(respond, refusal)
            return
    if batch_id is None or not batches.bless(services, batch_id, body["user"]["id"]):
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text="This run can't be blessed: it is already the baseline, or not finished yet.",
        )


async def handle_delete_suite(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    name = _route(body).suite
    where = audit.Where(
        body["user"]["id"],
        (body.get("team") or {}).get("id", ""),
        (body.get("channel") or {}).get("id", ""),
    )
    if name is not None and suite_admin.delete_suite(services_of(context).db, name, where):
        await respond(replace_original=True, **suite_replies.deleted(name, body["user"]["id"]))
    else:
        await respond(replace_original=True, **replies.decided("That suite no longer exists."))


async def handle_keep_suite(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    await respond(replace_original=True, **suite_replies.kept(_route(body).suite or ""))


def _spend_decision(
    decide: Callable[[Any, int, str], Awaitable[str]],
) -> Callable[..., Awaitable[None]]:
    """Approve or Decline on a launch held over a spend cap: only an admin's click counts;
    whoever clicked is told what came of it, only to them."""

    async def handle(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
    ) -> None:
        await ack()
        approval_id = _route(body).approval_id
        text = "I have no record of that request any more."
        if approval_id is not None:
            text = await decide(services_of(context), approval_id, body["user"]["id"])
        await respond(response_type="ephemeral", replace_original=False, text=text)

    return handle


HANDLERS = {
    ids.START_RUN: handle_start,
    ids.CANCEL_RUN: handle_cancel,
    ids.FLAG_RUN: handle_flag,
    ids.SHOW_TRANSCRIPT: handle_transcript,
    ids.TRANSCRIPT_PAGE: handle_transcript_page,
    ids.RUN_AGAIN: handle_run_again,
    ids.START_BATCH: handle_start_batch,
    ids.CANCEL_BATCH: handle_cancel_batch,
    ids.BLESS_BATCH: handle_bless,
    ids.DELETE_SUITE: handle_delete_suite,
    ids.KEEP_SUITE: handle_keep_suite,
    ids.START_COMPARE: handle_start_compare,
    ids.CANCEL_COMPARE: handle_cancel_compare,
    ids.APPROVE_SPEND: _spend_decision(budget_actions.approve),
    ids.DECLINE_SPEND: _spend_decision(budget_actions.decline),
}


def register(bolt: AsyncApp) -> None:
    for action_id in ids.ACTIONS:
        bolt.action(action_id)(HANDLERS[action_id])
