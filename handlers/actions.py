"""Buttons: Start / Cancel on a confirmation; Flag, Transcript, Run again on a result."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import ids, launch, reviews
from bot.blocks import replies
from bot.outcomes import AlreadyDecided, LaunchOutcome
from bot.routing import Route, decode
from handlers.context import services_of
from storage import runs as run_store
from storage.models import RunRecord

GONE = "I have no record of that test call any more."


def _route(body: dict[str, Any]) -> Route:
    """What the clicked button is about (the one place a button's value is read)."""
    return decode(body["actions"][0].get("value"))


# A confirmation button whose launch can't be read is answered like one no longer on record.
NO_LAUNCH = AlreadyDecided(None)


async def handle_start(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    launch_id = _route(body).launch_id
    outcome: LaunchOutcome = NO_LAUNCH
    if launch_id is not None:
        outcome = await launch.start(services_of(context), launch_id, body["user"]["id"])
    await respond(replace_original=True, **replies.launch_outcome(outcome))


async def handle_cancel(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    launch_id = _route(body).launch_id
    outcome: LaunchOutcome = NO_LAUNCH
    if launch_id is not None:
        outcome = launch.cancel(services_of(context), launch_id, body["user"]["id"])
    await respond(replace_original=True, **replies.launch_outcome(outcome))


def _run(context: AsyncBoltContext, route: Route) -> RunRecord | None:
    if route.run_id is None:
        return None
    return run_store.get_run(services_of(context).db, route.run_id)


async def _clicked_run(
    body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> RunRecord | None:
    """The run behind a result button, or None after telling the person it is gone."""
    run = _run(context, _route(body))
    if run is None:
        await respond(response_type="ephemeral", replace_original=False, text=GONE)
    return run


async def handle_flag(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _clicked_run(body, respond, context)
    if run is not None and run.call_id is not None:
        await reviews.open_flag_modal(
            services_of(context), run, user_id=body["user"]["id"], trigger_id=body["trigger_id"]
        )


async def handle_transcript(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _clicked_run(body, respond, context)
    if run is not None:
        await reviews.open_transcript(
            services_of(context), run, user_id=body["user"]["id"], trigger_id=body["trigger_id"]
        )


async def handle_transcript_page(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await ack()
    route = _route(body)
    run = _run(context, route)
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
    proposed, costs = launch.propose_again(
        services_of(context), run, user_id=body["user"]["id"], channel_id=channel_id
    )
    await respond(
        response_type="ephemeral", replace_original=False, **replies.confirmation(proposed, costs)
    )


HANDLERS = {
    ids.START_RUN: handle_start,
    ids.CANCEL_RUN: handle_cancel,
    ids.FLAG_RUN: handle_flag,
    ids.SHOW_TRANSCRIPT: handle_transcript,
    ids.TRANSCRIPT_PAGE: handle_transcript_page,
    ids.RUN_AGAIN: handle_run_again,
}


def register(bolt: AsyncApp) -> None:
    for action_id in ids.ACTIONS:
        bolt.action(action_id)(HANDLERS[action_id])
