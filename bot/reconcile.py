"""The background worker: applies stored webhook deliveries, and checks with ThunderPhone on
whatever has gone quiet, since webhooks can arrive late, twice, out of order or never."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlite_utils import Database

from bot.batches import reconcile_parts
from bot.bodies import may_spell_lone_surrogates, whole_characters
from bot.commits import write_each
from bot.ingest import launches_in_doubt
from bot.launch import CLOCK_SLACK, call_off_unsent, reconcile_launches
from bot.publish import refresh
from bot.reviews import STALE_FILING
from bot.runs import apply_grade, apply_grade_now, apply_run, apply_run_now, complete_details
from bot.services import Services
from bot.thunderphone import (
    Run,
    ThunderPhoneError,
    parse_call_graded,
    parse_test_call_completed,
)
from storage import batches as batch_store
from storage import inbox, launches, messages
from storage import runs as run_store
from storage.db import now_iso

log = logging.getLogger(__name__)

# The events the bot subscribes to at ThunderPhone, in the order a run usually sends them.
WEBHOOK_EVENTS = ("test-call.completed", "call.graded")
HANDLED_EVENTS = frozenset(WEBHOOK_EVENTS)
PAGE_SIZE = 200
# Deliveries read from the inbox at a time, and applied in one transaction.
DRAIN_CHUNK = 200
# Finished calls whose details (cost, end reason, transcript) are fetched at once.
DETAILS_CONCURRENCY = 8
# How long a fetch of details waits for the webhook intake to calm down before it goes anyway
# (it goes at once when the intake is waiting for details).
DETAILS_PATIENCE = 5.0
MAX_PAGES = 5


class RunNotKnownYet(Exception):
    """A report about a run that may belong to a launch still being looked for."""


async def apply_event(services: Services, event_type: str, data: dict[str, object]) -> None:
    if event_type == "test-call.completed":
        report = parse_test_call_completed(data)
        known = await apply_run(services, report)
        if not known and launches_in_doubt(services.db):
            # Kept for a later attempt: it may be the run of a launch whose answer was lost.
            raise RunNotKnownYet(report.id)
    elif event_type == "call.graded":
        await apply_grade(services, parse_call_graded(data))


def apply_event_now(services: Services, event_type: str, data: dict[str, object]) -> bool:
    """`apply_event` at once, in the caller's transaction, when nobody holds the run's lock (no
    await in between, so nothing else touches the run meanwhile). False when it must wait its
    turn through `apply_event`."""
    if event_type == "test-call.completed":
        report = parse_test_call_completed(data)
        if services.run_busy(report.id):
            return False
        if not apply_run_now(services, report) and launches_in_doubt(services.db):
            raise RunNotKnownYet(report.id)
    elif event_type == "call.graded":
        grade = parse_call_graded(data)
        run = run_store.find_run_by_call(services.db, grade.call_id)
        if run is not None and services.run_busy(run.run_id):
            return False
        apply_grade_now(services, grade, run)
    return True


def _envelope(row: dict[str, Any]) -> dict[str, Any]:
    envelope: dict[str, Any] = json.loads(row["body"])
    if may_spell_lone_surrogates(row["body"]):
        envelope = whole_characters(envelope)
    return envelope


async def drain_inbox(services: Services, waiting: asyncio.TaskGroup, in_turn: set[str]) -> int:
    """Apply every stored delivery that is due, oldest first; returns how many were applied.

    The deliveries of a chunk are applied in one synchronous step and one transaction
    (`bot.commits.write_each`), each in its own savepoint and marked applied with what it
    changed, so one that fails is kept alone. One whose run someone else holds (a click, the
    poller, a fetch of the call's details) waits for the run in a task of its own in
    `waiting`, its key in `in_turn` meanwhile, so the rest of the inbox goes on; it is marked
    applied once it is (should the process stop first, it is applied again, which changes
    nothing)."""

    def apply_now(row: dict[str, Any], db: Database) -> bool:
        envelope = _envelope(row)
        if not apply_event_now(services, row["event_type"], envelope.get("data") or {}):
            return False
        inbox.mark_processed(db, row["key"])
        return True

    async def apply_in_turn(row: dict[str, Any]) -> None:
        try:
            await apply_event(services, row["event_type"], _envelope(row).get("data") or {})
            inbox.mark_processed(services.db, row["key"])
        except Exception as error:
            _keep_for_later(services, row["key"], error)
        finally:
            in_turn.discard(row["key"])

    applied = 0
    while chunk := inbox.pending_events(services.db, limit=DRAIN_CHUNK, besides=in_turn):
        try:
            outcomes = write_each(services.db, [partial(apply_now, row) for row in chunk])
        except Exception as error:  # the commit failed: nothing of the chunk was kept
            outcomes = [(False, error)] * len(chunk)
        done = 0
        for row, (now, failure) in zip(chunk, outcomes, strict=True):
            if failure is not None:
                _keep_for_later(services, row["key"], failure)
            elif now:
                done += 1
            else:  # its run is held: it waits for it, the rest goes on
                in_turn.add(row["key"])
                waiting.create_task(apply_in_turn(row), name=f"webhook-{row['key']}")
        services.intake.settled(len(chunk))
        applied += done
        if len(chunk) < DRAIN_CHUNK or not done:
            break  # the rest (if any) failed, or waits its turn
        await asyncio.sleep(0)  # a turn for requests between chunks
    return applied


def _keep_for_later(services: Services, key: str, error: Exception) -> None:
    """A delivery not applied is kept for a later attempt, never dropped silently."""
    log.warning("webhook %s not applied yet: %r", key, error)
    try:
        inbox.mark_failed(services.db, key, repr(error))
    except Exception:  # the database itself failing: the delivery is tried again anyway
        log.exception("could not record why webhook %s was not applied", key)


async def recent_runs(
    services: Services, wanted: set[int], since: datetime | None
) -> tuple[list[Run], bool]:
    """ThunderPhone's newest runs, paging back until every wanted run has been seen and the
    list reaches back before `since`; the flag says whether it got that far."""
    found: list[Run] = []
    for page in range(MAX_PAGES):
        batch = await services.thunderphone.list_test_calls(
            limit=PAGE_SIZE, offset=page * PAGE_SIZE
        )
        found.extend(batch)
        if len(batch) < PAGE_SIZE:
            return found, True
        times = [run.created_at for run in batch if run.created_at is not None]
        reached = since is None or (bool(times) and min(times) < since)
        if reached and wanted <= {run.id for run in found}:
            return found, True
    return found, False


async def poll(services: Services) -> None:
    """One round of checks; each step stands alone, so one failure does not skip the rest."""
    db = services.db
    steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    active = run_store.active_run_ids(db)
    unsettled = launches.unsettled_launches(db, decided_before=now_iso())
    if active or unsettled:

        async def check_runs() -> None:
            clicks = [datetime.fromisoformat(x.decided_at) for x in unsettled if x.decided_at]
            since = min(clicks) - CLOCK_SLACK if clicks else None
            reports, complete = await recent_runs(services, set(active), since)
            by_id = {report.id: report for report in reports}
            for run_id in active:
                if run_id in by_id:
                    await apply_run(services, by_id[run_id])
                    # Applying needs no I/O: without a turn for the rest, a long list of runs
                    # would hold up every request until it is through.
                    await asyncio.sleep(0)
            await reconcile_launches(services, reports, complete=complete)

        steps.append(("runs", check_runs))
    steps.append(("launches never sent", lambda: call_off_unsent(services)))
    if batch_store.any_unsettled_parts(db):
        steps.append(("batch parts", lambda: reconcile_parts(services)))
    for run_id in run_store.drop_interrupted_flags(db, started_before=now_iso(STALE_FILING)):
        steps.append((f"flag of run {run_id}", _refresh_step(services, run_id)))
    for record in run_store.runs_missing_details(db):
        steps.append((f"details of run {record.run_id}", _details_step(services, record.run_id)))
    for record in run_store.finished_without_grade(db):
        if record.call_id is not None:
            steps.append((f"grade of call {record.call_id}", _grade_step(services, record.call_id)))
    for run_id in messages.terminal_runs_without_result(db, since=now_iso(timedelta(hours=24))):
        steps.append((f"result of run {run_id}", _refresh_step(services, run_id)))
    for name, step in steps:
        try:
            await step()
        except ThunderPhoneError as error:
            log.warning("checking %s with ThunderPhone failed: %s", name, error)
        except Exception:
            log.exception("checking %s failed", name)
    # Webhooks about runs of a launch that was being looked for, now found, go at once.
    if inbox.wake_known_runs(db):
        services.inbox_signal.set()


def _details_step(services: Services, run_id: int) -> Callable[[], Awaitable[None]]:
    return lambda: complete_details(services, run_id)


def _grade_step(services: Services, call_id: int) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        grade = await services.thunderphone.get_grade(call_id)
        # A grade with no score counts once grading has ended (failed, or recording disabled).
        if grade is not None and (grade.score is not None or grade.status not in {"", "pending"}):
            await apply_grade(services, grade)

    return step


def _refresh_step(services: Services, run_id: int) -> Callable[[], Awaitable[None]]:
    async def step() -> None:
        await refresh(services, run_id)

    return step


async def run_forever(services: Services) -> None:
    """Wake on each stored webhook, and every poll interval; never let one failure stop it.
    Deliveries waiting for their run (`drain_inbox`) are cancelled with it."""
    interval = services.settings.thunderbot_poll_seconds
    loop = asyncio.get_running_loop()
    next_poll = loop.time()
    in_turn: set[str] = set()
    async with asyncio.TaskGroup() as waiting:
        while True:
            # Cleared before draining, so a webhook stored meanwhile wakes the next round.
            services.inbox_signal.clear()
            try:
                await drain_inbox(services, waiting, in_turn)
                if loop.time() >= next_poll:
                    next_poll = loop.time() + interval
                    await poll(services)
            except Exception:
                log.exception("the background worker hit an unexpected error")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow the
            # cancellation that stops the worker, and shutdown then waits for ever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_poll - loop.time())):
                    await services.inbox_signal.wait()


async def fetch_details_forever(services: Services) -> None:
    """Fetch the details of finished calls as `Services.want_details` asks, several at once.
    Should the process stop first, the poll finds the runs still missing them."""

    async def fetcher() -> None:
        while True:
            run_id = await services.details_queue.get()
            # Cards and results first: a burst of webhooks is taken in before details.
            await services.intake.calm(DETAILS_PATIENCE)
            try:
                await complete_details(services, run_id)
            except Exception:
                log.exception("fetching the details of run %s failed", run_id)
            finally:
                services.details_wanted.discard(run_id)
                services.intake.progress()

    await asyncio.gather(*(fetcher() for _ in range(DETAILS_CONCURRENCY)))
