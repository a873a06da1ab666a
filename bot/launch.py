"""Launching a paid test call: consent first, the card before the money, exactly one run.

A launch is recorded when the confirmation is shown and claimed atomically by the first Start
click. ThunderPhone has no idempotency key, so a create is never retried; when its answer is
unclear, the launch is marked `unknown` and the run is looked for instead (`reconcile_launches`).
The launch is marked sent just before its create, so one a stop left unsent is called off
without a search (`call_off_unsent`).
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta

from sqlite_utils import Database

from bot import audit, budgets
from bot.blocks import notes
from bot.blocks.runs import launch_card
from bot.commands import RunCommand, Target
from bot.interactive import tell
from bot.outcomes import (
    AlreadyDecided,
    Cancelled,
    CannotPost,
    ConfirmationExpired,
    LaunchOutcome,
    NotRecorded,
    Refused,
    Started,
    Unclear,
)
from bot.publish import launch_card_key, run_card_key
from bot.runs import apply_run
from bot.services import Services
from bot.thunderphone import Run, TestCallRequest, ThunderPhoneError, ThunderPhoneRejected
from storage import aliases, launches
from storage import runs as run_store
from storage.db import now_iso
from storage.models import CallSpec, Launch, LaunchStatus, RunRecord

log = logging.getLogger(__name__)

# Consent is given to a confirmation someone just read, not to one found days later.
CONFIRMATION_LIFETIME = timedelta(hours=1)
# A launch still `launching` this long after the click lost its answer (the bot stopped):
# well past the longest a card post plus a create can take.
ANSWER_TIMEOUT = timedelta(minutes=3)
# How far apart the click and ThunderPhone's record of the run may be (clocks differ a little).
CLOCK_SLACK = timedelta(seconds=30)
# How long an unclear launch is looked for before it is called off.
SEARCH_WINDOW = timedelta(minutes=10)
STARTING = "⏳ Starting…"
CHECKING = "⏳ Checking with ThunderPhone whether this run started…"
# How long a click waits for its card to be up before giving up on starting the run.
CARD_WAIT = timedelta(seconds=45)


class UnknownAlias(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def resolve_target(services: Services, team_id: str, target: Target) -> tuple[str, int, str]:
    """(target_type, target_id, the label the person used)."""
    if target.kind != "alias":
        assert target.id is not None
        return target.kind, target.id, target.label
    alias = aliases.find_alias(services.db, team_id, str(target.alias))
    if alias is None:
        raise UnknownAlias(str(target.alias))
    return alias.target_type, alias.target_id, alias.name


async def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: RunCommand
) -> tuple[Launch, list[int]]:
    """Record what would be launched; returns it with the recent costs the confirmation shows."""
    target_type, target_id, label = resolve_target(services, team_id, command.target)
    spec = CallSpec(
        target_type=target_type,
        target_id=target_id,
        direction=command.direction,
        mode=command.mode,
        caller_number=command.caller,
        scenario_prompt=command.prompt,
    )
    return await _propose(
        services, spec, team_id=team_id, channel_id=channel_id, user_id=user_id, label=label
    )


async def propose_again(
    services: Services, run: RunRecord, *, user_id: str, channel_id: str
) -> tuple[Launch, list[int]]:
    """The same test call again, through the same consent step. Nobody typed a target this
    time, so the launch has no label; the confirmation names the run's target."""
    return await _propose(
        services,
        run.spec,
        team_id=run.team_id,
        channel_id=channel_id,
        user_id=user_id,
        label="",
    )


async def _propose(
    services: Services, spec: CallSpec, *, team_id: str, channel_id: str, user_id: str, label: str
) -> tuple[Launch, list[int]]:
    launch = Launch(
        id=launches.new_launch_id(),
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        target_label=label,
        created_at=now_iso(),
        **spec.model_dump(),
    )

    # Stored before it is answered; proposals made together share a commit. The recent costs
    # are read in the same step, while SQLite is at work anyway.
    def store(db: Database) -> tuple[Launch, list[int]]:
        costs = run_store.recent_costs(db, spec.target_type, spec.target_id)
        return launches.save_launch(db, launch), costs

    return await services.proposals.write(store)


def _decide(
    db: Database,
    launch_id: str,
    to: LaunchStatus,
    user_id: str,
    *,
    created_after: str = "",
    approved: bool = False,
) -> bool:
    """Claim a proposed launch and record who decided what, in one transaction: True only for
    the one caller that did it. A decision that cannot be recorded is not made (it raises).
    Consent reserves the estimate in the same transaction, or raises `budgets.OverCap` (and
    nothing is claimed) when it would pass a spend cap that an admin has not `approved`."""
    with db.atomic():
        if not launches.claim_launch(db, launch_id, to=to, by=user_id, created_after=created_after):
            return False
        launch = launches.get_launch(db, launch_id)
        assert launch is not None
        audit.launch_decided(db, launch, audit.decision_of(to), user_id)
        if to == "launching":
            budgets.reserve(db, budgets.launch_charge(db, launch), approved=approved)
    return True


def claim_approved(db: Database, launch_id: str, user_id: str) -> bool:
    """Consent given by `user_id` earlier, over a cap, now approved by an admin: claimed like
    a Start click, at most once, however old the confirmation."""
    return _decide(db, launch_id, "launching", user_id, approved=True)


def finish(
    db: Database,
    launch: Launch,
    *,
    status: LaunchStatus,
    run_id: int | None = None,
    error: str | None = None,
    unsent: bool = False,
) -> bool:
    """`launches.finish_launch` with its record in the trail, in one transaction."""
    with db.atomic():
        if not launches.finish_launch(
            db, launch.id, status=status, run_id=run_id, error=error, unsent=unsent
        ):
            return False
        audit.launch_settled(db, launch, status, run_id=run_id, error=error)
    return True


def cancel(services: Services, launch_id: str, user_id: str) -> LaunchOutcome:
    if _decide(services.db, launch_id, "cancelled", user_id):
        return Cancelled()
    return _decided_earlier(services, launch_id)


def _decided_earlier(services: Services, launch_id: str) -> AlreadyDecided:
    """A launch someone already decided, with the card of the run it started, if any."""
    launch = launches.get_launch(services.db, launch_id)
    run_id = launch.run_id if launch is not None else None
    card_ts = services.outbox.ts_of(run_card_key(run_id)) if run_id is not None else None
    return AlreadyDecided(launch, card_ts)


async def start(services: Services, launch_id: str, user_id: str) -> LaunchOutcome:
    """Launch the run behind a confirmation, at most once however often Start is pressed."""
    db = services.db
    try:
        consented = _decide(
            db, launch_id, "launching", user_id, created_after=now_iso(CONFIRMATION_LIFETIME)
        )
    except sqlite3.Error as error:
        log.exception("consent to launch %s not recorded", launch_id)
        return NotRecorded(str(error))
    except budgets.OverCap as over:
        return budgets.stopped(services, ("launch", launch_id), user_id, over)
    if not consented:
        if _decide(db, launch_id, "expired", user_id):
            return ConfirmationExpired()
        return _decided_earlier(services, launch_id)
    return await proceed(services, launch_id)


async def proceed(services: Services, launch_id: str) -> LaunchOutcome:
    """Start the run of a launch just claimed (consented to): the card, then the create."""
    db = services.db
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    budgets.warn(services, launch.team_id, launch.channel_id)
    card = launch_card_key(launch.id)
    # The card goes up before any money is spent: where the bot cannot post, nothing starts.
    services.outbox.show(card, launch.channel_id, launch_card(launch, STARTING))
    shown = await services.outbox.wait(card, timeout=CARD_WAIT.total_seconds())
    if shown.ts is None:
        problem = shown.failed or "Slack has not taken the card yet"
        services.outbox.withdraw(card)
        finish(db, launch, status="failed", error=f"cannot post: {problem}")
        return CannotPost(problem, refused=shown.failed is not None)
    # Recorded before the money: a stop before this line leaves a launch known never sent.
    try:
        if not launches.mark_sent(db, launch_id):  # called off meanwhile: not sent
            return _decided_earlier(services, launch_id)
    except sqlite3.Error as error:
        log.exception("launch %s not marked as sent; not sending it", launch_id)
        return _not_sent(services, launch, error)
    try:
        created = await services.thunderphone.create_test_call(test_call_request(launch.spec))
    except ThunderPhoneRejected as error:
        log.warning("ThunderPhone refused launch %s: %s", launch_id, error)
        finish(db, launch, status="failed", error=error.user_message)
        services.outbox.withdraw(card)
        await services.outbox.wait(card, timeout=CARD_WAIT.total_seconds())
        return Refused(error.user_message)
    except ThunderPhoneError as error:
        # The request may have reached ThunderPhone: look for the run rather than invite a
        # second paid one.
        log.warning("unclear answer to launch %s: %s", launch_id, error)
        if finish(db, launch, status="unknown", error=str(error)):
            services.outbox.show(card, launch.channel_id, launch_card(launch, CHECKING))
        return Unclear(f"ThunderPhone didn't answer clearly ({_reason(error)})")
    await adopt(services, launch, created)
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    return Started(launch, created.id, shown.ts)


def _not_sent(services: Services, launch: Launch, error: sqlite3.Error) -> NotRecorded:
    """The mark before the money could not be written, so nothing was sent: the launch is
    called off now where the database allows it (otherwise the poller does, later)."""
    try:
        if finish(
            services.db, launch, status="failed", error=notes.NOT_SENT_UNRECORDED, unsent=True
        ):
            services.outbox.withdraw(launch_card_key(launch.id))
    except sqlite3.Error:
        log.exception("launch %s not called off yet", launch.id)
    return NotRecorded(str(error), "that I was sending it to ThunderPhone")


def test_call_request(spec: CallSpec) -> TestCallRequest:
    return TestCallRequest(
        target_type=spec.target_type,  # type: ignore[arg-type]
        target_id=spec.target_id,
        direction=spec.direction,  # type: ignore[arg-type]
        consent_to_charge=True,
        scenario_prompt=spec.scenario_prompt,
        mode=spec.mode,  # type: ignore[arg-type]
        target_number=spec.caller_number,
    )


test_call_request.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _reason(error: ThunderPhoneError) -> str:
    if error.status is None:
        return error.detail or "no answer"
    return f"HTTP {error.status}"


async def adopt(services: Services, launch: Launch, created: Run) -> None:
    """Record the run ThunderPhone created for a launch, then apply all it says about the run.

    The first caller records it (a click's own answer, or the search for a lost one), and the
    launch's card becomes the run's; a later caller only brings the messages up to date.
    """
    run = RunRecord(
        run_id=created.id,
        launch_id=launch.id,
        team_id=launch.team_id,
        channel_id=launch.channel_id,
        started_by=launch.decided_by or launch.user_id,
        target_name=created.target_name or created.agent_name or "",
        status="queued",
        created_at=launch.decided_at or "",
        **launch.spec.model_dump(),
    )
    async with services.run_lock(run.run_id):
        with services.db.atomic():
            if run_store.get_run(services.db, run.run_id) is None and finish(
                services.db, launch, status="launched", run_id=run.run_id
            ):
                run_store.save_run(services.db, run)
                services.outbox.transfer(
                    launch_card_key(launch.id),
                    run_card_key(run.run_id),
                    notify_user=run.started_by,
                )
    await apply_run(services, created)


async def reconcile_launches(services: Services, recent: list[Run], *, complete: bool) -> None:
    """Find the runs of launches whose answer was lost; call off those never found.

    `recent` is ThunderPhone's run list, newest first; `complete` says it reaches back past
    every unsettled launch, so a launch missing from it really has no run.
    """
    db = services.db
    for launch in launches.unsettled_launches(db, decided_before=now_iso(ANSWER_TIMEOUT)):
        match = _closest_run(services, launch, recent)
        if match is not None:
            log.info("launch %s found as run %s", launch.id, match.id)
            await adopt(services, launch, match)
        elif complete and (launch.decided_at or "") < now_iso(SEARCH_WINDOW):
            await _call_off(services, launch, notes.NOT_STARTED)


async def call_off_unsent(services: Services) -> None:
    """Launches a stop left between the click and the create were never sent, so nothing was
    charged: called off at once, with no search (a run someone else started alike is not
    taken for theirs)."""
    for launch in launches.unsent_launches(services.db, decided_before=now_iso(ANSWER_TIMEOUT)):
        log.info("launch %s was never sent: calling it off", launch.id)
        await _call_off(services, launch, notes.NOT_SENT_AFTER_STOP, unsent=True)


def _closest_run(services: Services, launch: Launch, recent: list[Run]) -> Run | None:
    """The run created for this launch: same request, created within moments of the click."""
    if not launch.decided_at:
        return None
    clicked = datetime.fromisoformat(launch.decided_at)
    latest = clicked + ANSWER_TIMEOUT + CLOCK_SLACK
    candidates = [
        run
        for run in recent
        if run.created_at is not None
        and clicked - CLOCK_SLACK <= run.created_at <= latest
        and _same_call(launch.spec, run)
        and run_store.get_run(services.db, run.id) is None
    ]
    return min(candidates, key=lambda run: abs(run.created_at - clicked), default=None)  # type: ignore[operator]


def _same_call(spec: CallSpec, run: Run) -> bool:
    """Whether ThunderPhone's record of a run is the call described (it may leave out the
    caller id, direction and mode when they are the defaults)."""
    return (
        run.target_type == spec.target_type
        and run.target_id == spec.target_id
        and run.scenario_prompt == spec.scenario_prompt
        and (run.direction or "outbound") == spec.direction
        and (run.mode or "bot") == spec.mode
        and (not spec.caller_number or run.target_number == spec.caller_number)
    )


async def _call_off(
    services: Services, launch: Launch, reason: str, *, unsent: bool = False
) -> None:
    """Settle a launch that started no run, on its card and to the person who started it;
    nothing is said when it was settled otherwise meanwhile."""
    if not finish(services.db, launch, status="failed", error=reason, unsent=unsent):
        return
    card = launch_card_key(launch.id)
    if services.outbox.channel_of(card) is not None:
        services.outbox.show(
            card, launch.channel_id, launch_card(launch, notes.called_off_status(reason))
        )
    await tell(
        services,
        launch.channel_id,
        launch.decided_by or launch.user_id,
        notes.called_off(launch.decided_at, reason),
        thread_ts=services.outbox.ts_of(card),
    )
