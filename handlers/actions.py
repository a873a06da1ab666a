"""Buttons: Start / Cancel on a confirmation; Flag, Transcript, Run again on a result."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond

from bot import ids, reviews, runs
from handlers.context import services_of
from storage import runs as run_store
from storage.models import RunRecord


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


async def handle_start(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    reply = await runs.start(services_of(context), _value(body), body["user"]["id"])
    await respond(replace_original=True, **reply.message)


async def handle_cancel(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    reply = runs.cancel(services_of(context), _value(body), body["user"]["id"])
    await respond(replace_original=True, **reply.message)


async def _run_or_tell(
    body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> RunRecord | None:
    value = _value(body)
    run = run_store.get_run(services_of(context).db, int(value)) if value.isdigit() else None
    if run is None:
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text="I have no record of that test call any more.",
        )
    return run


async def handle_flag(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _run_or_tell(body, respond, context)
    if run is not None:
        await reviews.open_flag_modal(services_of(context), run, body["trigger_id"])


async def handle_transcript(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _run_or_tell(body, respond, context)
    if run is not None:
        await reviews.open_transcript(services_of(context), run, body["trigger_id"])


async def handle_transcript_page(
    ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
) -> None:
    await ack()
    services = services_of(context)
    run_text, _, page_text = _value(body).partition(":")
    run = run_store.get_run(services.db, int(run_text)) if run_text.isdigit() else None
    if run is None or not page_text.isdigit():
        return
    view = reviews.transcript_page(services, run, int(page_text))
    await services.slack.views_update(
        view_id=body["view"]["id"], hash=body["view"].get("hash"), view=view
    )


async def handle_run_again(
    ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    await ack()
    run = await _run_or_tell(body, respond, context)
    if run is None:
        return
    channel_id = (body.get("channel") or {}).get("id") or run.channel_id
    _, confirmation = runs.propose_again(
        services_of(context), run, user_id=body["user"]["id"], channel_id=channel_id
    )
    await respond(response_type="ephemeral", replace_original=False, **confirmation)


def register(bolt: AsyncApp) -> None:
    bolt.action(ids.START_RUN)(handle_start)
    bolt.action(ids.CANCEL_RUN)(handle_cancel)
    bolt.action(ids.FLAG_RUN)(handle_flag)
    bolt.action(ids.SHOW_TRANSCRIPT)(handle_transcript)
    bolt.action(ids.TRANSCRIPT_PAGE)(handle_transcript_page)
    bolt.action(ids.RUN_AGAIN)(handle_run_again)
