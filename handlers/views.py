"""Modal submissions: the review flag."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext

from bot import ids, reviews
from bot.routing import Route, decode
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
        await ack(
            response_action="errors",
            errors={ids.FLAG_TITLE: "I have no record of this test call any more."},
        )
        return
    form, errors = reviews.check_flag(services, run, _flag_input(view))
    if form is None:
        await ack(response_action="errors", errors=errors)
        return
    await ack()
    await reviews.file_flag(services, run, form, body["user"]["id"])


def register(bolt: AsyncApp) -> None:
    bolt.view(ids.FLAG_MODAL)(handle_flag_submission)
