"""Test-call runs: asking for consent, launching exactly once, and applying what ThunderPhone
reports back. Slack messages are rendered by `bot.publish`; storage is `storage.*`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.blocks import replies
from bot.commands import RunCommand, Target
from bot.publish import publish_run
from bot.services import Services
from bot.thunderphone import (
    Grade,
    Run,
    TestCallRequest,
    ThunderPhoneError,
    ThunderPhoneUnavailable,
)
from storage import aliases, launches
from storage import runs as run_store
from storage.models import GradeRecord, Launch, RunRecord

log = logging.getLogger(__name__)

# Consent is given to a confirmation someone just read, not to one found days later.
CONFIRMATION_LIFETIME = timedelta(hours=1)


class UnknownAlias(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


@dataclass(frozen=True)
class Reply:
    """What the person who clicked sees in place of the confirmation."""

    message: dict[str, Any]


def resolve_target(services: Services, team_id: str, target: Target) -> tuple[str, int, str]:
    """(target_type, target_id, label the person used)."""
    if target.kind != "alias":
        assert target.id is not None
        return target.kind, target.id, target.label
    alias = aliases.find_alias(services.db, team_id, str(target.alias))
    if alias is None:
        raise UnknownAlias(str(target.alias))
    return alias.target_type, alias.target_id, alias.name


def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: RunCommand
) -> tuple[Launch, dict[str, Any]]:
    """Record what would be launched and build the confirmation that asks for consent."""
    target_type, target_id, label = resolve_target(services, team_id, command.target)
    launch = Launch(
        id=launches.new_launch_id(),
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        target_type=target_type,
        target_id=target_id,
        target_label=label,
        direction=command.direction,
        mode=command.mode,
        caller_number=command.caller,
        scenario_prompt=command.prompt,
    )
    return _propose(services, launch)


def propose_again(
    services: Services, run: RunRecord, *, user_id: str, channel_id: str
) -> tuple[Launch, dict[str, Any]]:
    """The same test call again; it goes through the same consent step."""
    launch = Launch(
        id=launches.new_launch_id(),
        team_id=run.team_id,
        channel_id=channel_id,
        user_id=user_id,
        target_type=run.target_type,
        target_id=run.target_id,
        target_label=f"{run.target_type}:{run.target_id}",
        direction=run.direction,
        mode=run.mode,
        caller_number=run.caller_number,
        scenario_prompt=run.scenario_prompt,
    )
    return _propose(services, launch)


def _propose(services: Services, launch: Launch) -> tuple[Launch, dict[str, Any]]:
    stored = launches.save_launch(services.db, launch)
    costs = run_store.recent_costs(services.db, launch.target_type, launch.target_id)
    return stored, replies.confirmation(stored, costs)


def cancel(services: Services, launch_id: str, user_id: str) -> Reply:
    if launches.claim_launch(services.db, launch_id, to="cancelled", by=user_id):
        return Reply(replies.decided("Cancelled. Nothing was started or charged."))
    return _already_decided(services, launch_id)


async def start(services: Services, launch_id: str, user_id: str) -> Reply:
    """Launch the run behind a confirmation, at most once however often Start is pressed."""
    db = services.db
    oldest = (datetime.now(UTC) - CONFIRMATION_LIFETIME).isoformat(timespec="milliseconds")
    if not launches.claim_launch(db, launch_id, to="launching", by=user_id, created_after=oldest):
        if launches.claim_launch(db, launch_id, to="expired", by=user_id):
            return Reply(
                replies.decided(
                    "This confirmation is more than an hour old, so I didn't start anything. "
                    "Run the command again to get a fresh one."
                )
            )
        return _already_decided(services, launch_id)
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    request = TestCallRequest(
        target_type=launch.target_type,  # type: ignore[arg-type]
        target_id=launch.target_id,
        direction=launch.direction,  # type: ignore[arg-type]
        consent_to_charge=True,
        scenario_prompt=launch.scenario_prompt,
        mode=launch.mode,  # type: ignore[arg-type]
        target_number=launch.caller_number,
    )
    try:
        created = await services.thunderphone.create_test_call(request)
    except ThunderPhoneError as error:
        message = error.user_message
        if isinstance(error, ThunderPhoneUnavailable) and error.status is None:
            # The request may have reached ThunderPhone; say so rather than invite a double run.
            message += " If the run did start, its result will still appear here."
        launches.finish_launch(db, launch_id, status="failed", error=message)
        log.warning("launch %s failed: %s", launch_id, error)
        return Reply(replies.decided(f"Couldn't start the test call. {message}"))
    run = RunRecord(
        run_id=created.id,
        launch_id=launch.id,
        team_id=launch.team_id,
        channel_id=launch.channel_id,
        started_by=user_id,
        target_type=launch.target_type,
        target_id=launch.target_id,
        target_name=created.target_name or created.agent_name or "",
        direction=launch.direction,
        mode=launch.mode,
        caller_number=launch.caller_number,
        scenario_prompt=launch.scenario_prompt,
        status=created.status or "queued",
        call_id=created.call_id,
    )
    async with services.run_locks[run.run_id]:
        with db.atomic():
            run_store.save_run(db, run)
            launches.finish_launch(db, launch_id, status="launched", run_id=run.run_id)
        posted = await publish_run(services, run.run_id)
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    if not posted:
        return Reply(
            replies.decided(
                f"Started run {run.run_id}, but I couldn't post its card in this channel. "
                "Invite me with `/invite @thunderbot` and the results will follow."
            )
        )
    return Reply(replies.started(launch, run.run_id))


def _already_decided(services: Services, launch_id: str) -> Reply:
    launch = launches.get_launch(services.db, launch_id)
    if launch is None:
        return Reply(replies.decided("This confirmation has expired. Run the command again."))
    return Reply(replies.already_decided(launch))


async def apply_run(services: Services, report: Run) -> bool:
    """Merge what ThunderPhone says about a run, then bring its Slack messages up to date.

    Returns False for runs this bot did not start. Safe to call any number of times.
    """
    db = services.db
    if run_store.get_run(db, report.id) is None:
        return False
    async with services.run_locks[report.id]:
        run, _ = run_store.merge_run(
            db,
            report.id,
            {
                "status": report.status or None,
                "call_id": report.call_id,
                "error_message": report.error_message or None,
                "duration_seconds": report.duration_seconds,
                "target_name": report.target_name or report.agent_name or None,
                "started_at": report.started_at.isoformat() if report.started_at else None,
                "completed_at": report.completed_at.isoformat() if report.completed_at else None,
            },
        )
        if run.is_terminal and run.call_id is not None:
            await _fetch_call_details(services, run)
        await publish_run(services, run.run_id)
    return True


async def _fetch_call_details(services: Services, run: RunRecord) -> None:
    """Billed cost, end reason and transcript of a finished call, fetched once."""
    assert run.call_id is not None
    db = services.db
    if run.cost_cents is None or run.end_reason is None:
        call = await services.thunderphone.get_call(run.call_id)
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
            run_store.merge_grade(
                db, GradeRecord(call_id=run.call_id, score=call.grade_score, status="completed")
            )
    if run_store.get_transcript(db, run.call_id) is None:
        transcript = await services.thunderphone.get_transcript(run.call_id)
        entries = [entry.model_dump(exclude_none=True) for entry in transcript.entries]
        run_store.save_transcript(db, run.call_id, entries)


async def apply_grade(services: Services, grade: Grade) -> bool:
    """Store a grade (a later one replaces an earlier one) and show it if its run is known."""
    graded_at = grade.graded_at or grade.updated_at
    record = GradeRecord(
        call_id=grade.call_id,
        score=grade.score,
        status=grade.status,
        call_outcome=grade.call_outcome,
        summary=grade.summary,
        outcome_reasoning=grade.outcome_reasoning,
        grader_model=grade.grader_model,
        graded_at=graded_at.isoformat() if graded_at else None,
    )
    run_store.merge_grade(services.db, record)
    run = run_store.find_run_by_call(services.db, grade.call_id)
    if run is None:
        # The run may not know its call yet; the grade waits, keyed by call.
        return False
    async with services.run_locks[run.run_id]:
        await publish_run(services, run.run_id)
    return True
