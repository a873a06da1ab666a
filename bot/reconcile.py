"""The background worker: applies stored webhook deliveries, and checks with ThunderPhone on
runs that have gone quiet, since webhooks can arrive late, twice, out of order or never."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from bot.runs import apply_grade, apply_run
from bot.services import Services
from bot.thunderphone import (
    ThunderPhoneError,
    parse_call_graded,
    parse_test_call_completed,
)
from storage import inbox
from storage import runs as run_store

log = logging.getLogger(__name__)

HANDLED_EVENTS = frozenset({"test-call.completed", "call.graded"})


async def apply_event(services: Services, event_type: str, data: dict[str, object]) -> None:
    if event_type == "test-call.completed":
        await apply_run(services, parse_test_call_completed(data))
    elif event_type == "call.graded":
        await apply_grade(services, parse_call_graded(data))


async def drain_inbox(services: Services) -> int:
    """Apply every stored delivery not yet applied, oldest first; returns how many were applied."""
    applied = 0
    for row in inbox.pending_events(services.db):
        try:
            envelope = json.loads(row["body"])
            await apply_event(services, row["event_type"], envelope.get("data") or {})
        except Exception as error:  # kept for a later attempt, never dropped
            log.warning("webhook %s not applied yet: %s", row["key"], error)
            inbox.mark_failed(services.db, row["key"], repr(error))
            continue
        inbox.mark_processed(services.db, row["key"])
        applied += 1
    return applied


async def poll_runs(services: Services) -> None:
    """Ask ThunderPhone about unfinished runs and finished ones still missing their grade."""
    db = services.db
    active = run_store.active_runs(db)
    if active:
        reports = {run.id: run for run in await services.thunderphone.list_test_calls(limit=200)}
        for record in active:
            report = reports.get(record.run_id)
            if report is not None:
                await apply_run(services, report)
    for record in run_store.finished_without_grade(db):
        if record.call_id is None:
            continue
        grade = await services.thunderphone.get_grade(record.call_id)
        # A grade with no score counts once grading has ended (failed, or recording disabled).
        if grade is not None and (grade.score is not None or grade.status not in {"", "pending"}):
            await apply_grade(services, grade)
    for record in run_store.finished_without_result(db):
        await apply_run_from_store(services, record.run_id)


async def apply_run_from_store(services: Services, run_id: int) -> None:
    from bot.publish import publish_run

    async with services.run_locks[run_id]:
        await publish_run(services, run_id)


async def run_forever(services: Services) -> None:
    """Wake on each stored webhook, and every poll interval; never let one failure stop it."""
    interval = services.settings.thunderbot_poll_seconds
    loop = asyncio.get_running_loop()
    next_poll = loop.time()
    while True:
        try:
            await drain_inbox(services)
            if loop.time() >= next_poll:
                next_poll = loop.time() + interval
                await poll_runs(services)
        except ThunderPhoneError as error:
            log.warning("checking runs with ThunderPhone failed: %s", error)
        except Exception:
            log.exception("the background worker hit an unexpected error")
        services.inbox_signal.clear()
        with contextlib.suppress(TimeoutError):
            timeout = max(0.0, next_poll - loop.time())
            await asyncio.wait_for(services.inbox_signal.wait(), timeout=timeout)
