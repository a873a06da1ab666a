"""Applying what ThunderPhone reports about runs: idempotent merges, then fresh messages.

Reports come from webhooks (in any order, any number of times) and from polling; either way
the same merge applies, so the outcome does not depend on which arrived first or how often.
"""

from __future__ import annotations

import logging
from datetime import UTC
from typing import Any

from sqlite_utils import Database

from bot import budgets
from bot.publish import publish_run, show_run
from bot.services import Services
from bot.thunderphone import Grade, Run, ThunderPhoneClient, ThunderPhoneError
from storage import runs as run_store
from storage.models import GradeRecord, RunRecord

log = logging.getLogger(__name__)


async def apply_run(services: Services, report: Run) -> bool:
    """Merge a run report and update the run's messages. False for runs this bot did not start."""
    async with services.run_lock(report.id):
        return apply_run_now(services, report)


def apply_run_now(services: Services, report: Run) -> bool:
    """`apply_run` for a caller holding the run's lock, or running while nobody holds it: with
    no await in between, nothing else touches the run meanwhile."""
    merged = run_store.merge_known_run(services.db, report.id, run_changes(report))
    if merged is None:
        return False
    run, changed = merged
    if changed or not services.shown_since_start(run.run_id):
        show_run(services, run)
    if needs_details(services.db, run):
        # The card moves on at once; the call's cost and transcript follow.
        services.want_details(run.run_id)
    return True


async def complete_details(services: Services, run_id: int) -> None:
    """Fetch what a finished run's call still lacks, and show it. A bill that arrives can
    take spend past a cap's 50% or 80% (a call longer than its estimate): the channel hears
    of it then, not at the next Start."""
    async with services.run_lock(run_id):
        run = run_store.get_run(services.db, run_id)
        if run is None or not needs_details(services.db, run):
            return
        await fetch_call_details(services, run)
        fetched = run_store.get_run(services.db, run_id)
        if fetched is None:
            return
        show_run(services, fetched)
    if run.cost_cents is None and fetched.cost_cents is not None and fetched.channel_id:
        budgets.warn(services, fetched.team_id, fetched.channel_id)


def needs_details(db: Database, run: RunRecord) -> bool:
    return run.is_terminal and run.call_id is not None and _missing_details(db, run)


def _missing_details(db: Database, run: RunRecord) -> bool:
    return (
        run.cost_cents is None
        or run.end_reason is None
        or run_store.get_transcript(db, run.call_id) is None
    )


def run_changes(report: Run) -> dict[str, Any]:
    """What a run report says, as changes for `storage.runs.merge_run`."""
    return {
        "status": report.status or None,
        "call_id": report.call_id,
        "error_message": report.error_message or None,
        "duration_seconds": report.duration_seconds,
        "target_name": report.target_name or report.agent_name or None,
        "started_at": _iso(report.started_at),
        "completed_at": _iso(report.completed_at),
    }


async def fetch_call_details(services: Services, run: RunRecord) -> None:
    """Billed cost, end reason and transcript of a finished call. What cannot be fetched now is
    fetched again by the poller (`runs_missing_details`); the result shows what is known."""
    await fetch_details(services.db, services.thunderphone, run)


async def fetch_details(db: Database, thunderphone: ThunderPhoneClient, run: RunRecord) -> None:
    """`fetch_call_details` on the database and client alone (no Slack)."""
    assert run.call_id is not None
    try:
        if run.cost_cents is None or run.end_reason is None:
            call = await thunderphone.get_call(run.call_id)
            run_store.merge_run(
                db,
                run.run_id,
                {
                    "cost_cents": call.billing_total_cents,
                    "end_reason": call.end_reason or None,
                    "duration_seconds": call.duration_seconds,
                },
            )
            if call.grade_score is not None and run_store.get_grade(db, run.call_id) is None:
                # The call's score alone; the full grade is still asked for (`provisional`).
                provisional = GradeRecord(
                    call_id=run.call_id, score=call.grade_score, status="provisional"
                )
                run_store.merge_grade(db, provisional)
        if run_store.get_transcript(db, run.call_id) is None:
            await _fetch_transcript(db, thunderphone, run.call_id)
    except ThunderPhoneError as error:
        log.warning("details of run %s not fetched yet: %s", run.run_id, error)


async def fetch_transcript(services: Services, call_id: int) -> list[dict[str, Any]]:
    return await _fetch_transcript(services.db, services.thunderphone, call_id)


async def _fetch_transcript(
    db: Database, thunderphone: ThunderPhoneClient, call_id: int
) -> list[dict[str, Any]]:
    transcript = await thunderphone.get_transcript(call_id)
    entries = [entry.model_dump(exclude_none=True) for entry in transcript.entries]
    # An empty transcript may only be not ready yet: keep asking rather than store nothing.
    if entries:
        run_store.save_transcript(db, call_id, entries)
    return entries


def grade_record(grade: Grade) -> GradeRecord:
    """A grade as stored, for `storage.runs.merge_grade`."""
    graded_at = grade.graded_at or grade.updated_at
    return GradeRecord(
        call_id=grade.call_id,
        score=grade.score,
        status=grade.status,
        call_outcome=grade.call_outcome,
        summary=grade.summary,
        outcome_reasoning=grade.outcome_reasoning,
        grader_model=grade.grader_model,
        # One time zone, so grades compare in time order.
        graded_at=graded_at.astimezone(UTC).isoformat() if graded_at else None,
    )


async def apply_grade(services: Services, grade: Grade) -> bool:
    """Store a grade (a later one replaces an earlier one) and show it if its run is known."""
    run = run_store.find_run_by_call(services.db, grade.call_id)
    if run is None:
        return apply_grade_now(services, grade, None)
    async with services.run_lock(run.run_id):
        return apply_grade_now(services, grade, run)


def apply_grade_now(services: Services, grade: Grade, run: RunRecord | None) -> bool:
    """`apply_grade` for the grade of `run` (as found by its call) while holding the run's lock,
    or while nobody holds it."""
    stored = run_store.merge_grade(services.db, grade_record(grade))
    if run is None:
        # The run may not know its call yet; the grade waits, keyed by call.
        return False
    if stored or not services.shown_since_start(run.run_id):
        publish_run(services, run.run_id)
    return True


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
