"""Modal submissions: the review flag."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot import ids, reviews
from handlers.context import services_of
from storage import runs as run_store


async def handle_flag_submission(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    services = services_of(context)
    run_id = reviews.run_id_of(view)
    run = run_store.get_run(services.db, run_id) if run_id is not None else None
    if run is None:
        await ack(
            response_action="errors",
            errors={ids.FLAG_TITLE: "I have no record of this test call any more."},
        )
        return
    form, errors = reviews.read_flag_form(view, len(reviews.transcript_turns(services, run)))
    if form is None:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    await reviews.file_flag(services, form, body["user"]["id"])


def register(bolt: AsyncApp) -> None:
    bolt.view(ids.FLAG_MODAL)(handle_flag_submission)
