"""Slack messages the bot owns: one card per run in the channel, one result in its thread.

Each message is stored with its channel, `ts` and a digest of what it shows, so a replayed event
edits nothing and a message that could not be posted is posted on a later attempt.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError

from bot.blocks.runs import run_card, run_result
from bot.services import Services
from storage import runs as run_store
from storage.models import Launch, RunRecord

log = logging.getLogger(__name__)

# What a Slack call can fail with: an error answer, or no answer at all.
SLACK_FAILURES = (SlackApiError, aiohttp.ClientError, asyncio.TimeoutError)


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _problem(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or "error")
    return type(error).__name__


async def refresh(services: Services, run_id: int) -> None:
    """Bring a run's messages up to date, taking turns with anything else touching the run."""
    async with services.run_lock(run_id):
        await publish_run(services, run_id)


async def publish_run(services: Services, run_id: int) -> None:
    """Post or edit the card and, once the run is over, the result. Callers hold the run's lock."""
    run = run_store.get_run(services.db, run_id)
    if run is None:
        return
    grade = run_store.get_grade(services.db, run.call_id)
    await _show(services, run, "card", run_card(run, grade, services.threshold), thread_ts=None)
    run = run_store.get_run(services.db, run_id)
    assert run is not None
    if run.is_terminal and run.card_ts is not None:
        transcript = run_store.get_transcript(services.db, run.call_id)
        flag = run_store.get_flag(services.db, run.run_id)
        result = run_result(run, grade, transcript, services.threshold, flag)
        await _show(services, run, "result", result, thread_ts=run.card_ts)


async def _show(
    services: Services,
    run: RunRecord,
    kind: str,
    payload: dict[str, Any],
    *,
    thread_ts: str | None,
) -> None:
    ts = run.card_ts if kind == "card" else run.result_ts
    stored_digest = run.card_digest if kind == "card" else run.result_digest
    new_digest = digest(payload)
    if ts is not None and stored_digest == new_digest:
        return
    try:
        if ts is None:
            ts = await _post(services, run.channel_id, payload, thread_ts=thread_ts)
        else:
            await services.slack.chat_update(channel=run.channel_id, ts=ts, **payload)
    except SLACK_FAILURES as error:
        log.warning("could not show the %s of run %s: %s", kind, run.run_id, _problem(error))
        return
    run_store.set_run_message(services.db, run.run_id, kind, ts=ts, digest=new_digest)


async def _post(
    services: Services, channel: str, payload: dict[str, Any], *, thread_ts: str | None
) -> str:
    response = await services.slack.chat_postMessage(
        channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **payload
    )
    return str(response["ts"])


async def show_launch_card(
    services: Services, launch: Launch, payload: dict[str, Any]
) -> tuple[str | None, str]:
    """Post (or edit) the card of a launch that has no run yet: (ts, "") or (None, problem)."""
    try:
        if launch.card_ts is None:
            return await _post(services, launch.channel_id, payload, thread_ts=None), ""
        await services.slack.chat_update(channel=launch.channel_id, ts=launch.card_ts, **payload)
        return launch.card_ts, ""
    except SLACK_FAILURES as error:
        log.warning("could not show the card of launch %s: %s", launch.id, _problem(error))
        return None, _problem(error)


async def delete_message(services: Services, channel: str, ts: str) -> None:
    try:
        await services.slack.chat_delete(channel=channel, ts=ts)
    except SLACK_FAILURES as error:
        log.warning("could not delete message %s in %s: %s", ts, channel, _problem(error))


async def tell(
    services: Services, channel: str, user: str, text: str, *, thread_ts: str | None = None
) -> None:
    """An ephemeral note to one person; text is mrkdwn, so callers escape what they quote."""
    try:
        await services.slack.chat_postEphemeral(
            channel=channel, user=user, text=text, thread_ts=thread_ts
        )
    except SLACK_FAILURES as error:
        log.warning("could not tell %s: %s (%s)", user, text, _problem(error))
