"""Bringing a run's Slack messages up to date: one card in the channel, one result in its
thread. Each message is stored with its channel, `ts` and a digest of what it shows, so a
replayed event edits nothing and a missing message is posted on the next attempt."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.blocks.runs import run_card, run_result
from bot.services import Services
from storage import runs as run_store
from storage.models import RunRecord

log = logging.getLogger(__name__)


def digest(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def publish_run(services: Services, run_id: int) -> bool:
    """Post or edit the card and (once the run is over) the result. False if the card failed.

    Callers hold the run's lock.
    """
    run = run_store.get_run(services.db, run_id)
    if run is None:
        return False
    grade = run_store.get_grade(services.db, run.call_id)
    card = run_card(run, grade, services.threshold)
    if not await _show(services, run, "card", card, thread_ts=None):
        return False
    run = run_store.get_run(services.db, run_id)
    assert run is not None and run.card_ts is not None
    if run.is_terminal:
        transcript = run_store.get_transcript(services.db, run.call_id)
        flag = run_store.get_flag(services.db, run.run_id)
        result = run_result(run, grade, transcript, services.threshold, flag)
        await _show(services, run, "result", result, thread_ts=run.card_ts)
    return True


async def _show(
    services: Services,
    run: RunRecord,
    kind: str,
    payload: dict[str, Any],
    *,
    thread_ts: str | None,
) -> bool:
    ts = run.card_ts if kind == "card" else run.result_ts
    stored_digest = run.card_digest if kind == "card" else run.result_digest
    new_digest = digest(payload)
    if ts is not None and stored_digest == new_digest:
        return True
    try:
        if ts is None:
            response = await services.slack.chat_postMessage(
                channel=run.channel_id,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                **payload,
            )
            ts = str(response["ts"])
        else:
            await services.slack.chat_update(channel=run.channel_id, ts=ts, **payload)
    except SlackApiError as error:
        log.warning("could not show the %s of run %s: %s", kind, run.run_id, error)
        return False
    run_store.set_run_message(services.db, run.run_id, kind, ts=ts, digest=new_digest)
    return True
