"""Batches: several runs after one consent, under one card, sent as ThunderPhone batches of at
most 20 runs, each sent at most once.

A request is recorded when the confirmation is shown and claimed by the first Start click, like
a single launch. Each part (one ThunderPhone batch) is claimed before its paid request; a part
ThunderPhone refuses stops the parts after it, and a part whose answer is unclear is looked for
by the name it was sent with (`reconcile_parts`), never sent again.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlite_utils import Database

from bot import audit, budgets
from bot.batch_report import build_report
from bot.blocks.batches import batch_card
from bot.commands import (
    DEFAULT_STAGGER_SECONDS,
    BatchCommand,
    SuiteRun,
    Target,
    check_run_count,
)
from bot.launch import CARD_WAIT, CONFIRMATION_LIFETIME, SEARCH_WINDOW, resolve_target
from bot.outcomes import (
    BatchAlreadyDecided,
    BatchOutcome,
    BatchStarted,
    Cancelled,
    CannotPost,
    ConfirmationExpired,
    NotRecorded,
    Refused,
    Unclear,
)
from bot.publish import batch_card_key, publish_batch
from bot.services import Services
from bot.suites import Suite, suite_from_record
from bot.thunderphone import (
    Batch,
    BatchRequest,
    ThunderPhoneClient,
    ThunderPhoneError,
    ThunderPhoneRejected,
)
from storage import batches as batch_store
from storage import runs as run_store
from storage import suites as suite_store
from storage.db import now_iso
from storage.models import BatchItem, BatchPart, BatchRecord, BatchStatus, RunRecord

log = logging.getLogger(__name__)

# A part still `launching` this long after it was claimed lost its answer (the bot stopped).
PART_ANSWER_TIMEOUT = timedelta(minutes=3)
NOT_SENT_AFTER_REFUSAL = "not sent: ThunderPhone refused an earlier part"
NOT_SENT_WHILE_UNCLEAR = "not sent: an earlier part's answer was unclear when they were due"
NOT_SENT_AFTER_STOP = "not sent: the bot stopped while starting this batch"


def part_name(batch_id: str, part: int) -> str:
    """The name a part is sent with, so it can be found again if its answer is lost."""
    return f"thunderbot {batch_id} part {part + 1}"


def plan(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    target: Target,
    cases: list[tuple[str | None, str, str | None]],
    direction: str,
    caller_number: str | None,
    stagger: int,
    repeat: int,
    suite: str | None = None,
) -> tuple[BatchRecord, list[BatchItem], list[int]]:
    """Record a proposed batch of `cases` (name, prompt, expected JSON), each run `repeat`
    times in the order given; returns it, its items and the target's recent costs."""
    return plan_on(
        services.db,
        resolved=resolve_target(services, team_id, target),
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        cases=cases,
        direction=direction,
        caller_number=caller_number,
        stagger=stagger,
        repeat=repeat,
        suite=suite,
    )


def plan_on(
    db: Database,
    *,
    resolved: tuple[str, int, str],
    team_id: str,
    channel_id: str,
    user_id: str,
    cases: list[tuple[str | None, str, str | None]],
    direction: str,
    caller_number: str | None,
    stagger: int,
    repeat: int,
    suite: str | None = None,
) -> tuple[BatchRecord, list[BatchItem], list[int]]:
    """`plan` on the database alone, for a target already resolved to (target_type,
    target_id, label)."""
    target_type, target_id, label = resolved
    items = [
        BatchItem(position=0, case_name=name, prompt=prompt, expected=expected, attempt=attempt)
        for name, prompt, expected in cases
        for attempt in range(1, repeat + 1)
    ]
    items = [item.model_copy(update={"position": index}) for index, item in enumerate(items)]
    batch = batch_store.save_batch(
        db,
        BatchRecord(
            id=batch_store.new_batch_id(),
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            target_type=target_type,
            target_id=target_id,
            target_label=label,
            direction=direction,
            caller_number=caller_number,
            stagger=stagger,
            repeat=repeat,
            suite=suite,
        ),
        items,
    )
    costs = run_store.recent_costs(db, target_type, target_id)
    return batch, batch_store.get_items(db, batch.id), costs


class UnknownSuite(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class SuiteNeedsTarget(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def propose_batch(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: BatchCommand
) -> tuple[BatchRecord, list[BatchItem], list[int]]:
    return plan(
        services,
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        target=command.target,
        cases=[(None, prompt, None) for prompt in command.prompts],
        direction=command.direction,
        caller_number=command.caller,
        stagger=command.stagger,
        repeat=command.repeat,
    )


def propose_suite_run(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: SuiteRun
) -> tuple[BatchRecord, list[BatchItem], list[int]]:
    """A suite's cases as one batch, on the target named or the suite's default. Raises
    UnknownSuite, SuiteNeedsTarget, or CommandError when it would be too many runs."""
    record = suite_store.get_suite(services.db, command.name)
    if record is None:
        raise UnknownSuite(command.name)
    suite = suite_from_record(record)
    target = command.target or suite.target
    if target is None:
        raise SuiteNeedsTarget(suite.name)
    shape = suite_run_shape(suite, repeat=command.repeat, stagger=command.stagger)
    return plan(
        services,
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        target=target,
        cases=shape.cases,
        direction=shape.direction,
        caller_number=shape.caller_number,
        stagger=shape.stagger,
        repeat=shape.repeat,
        suite=suite.name,
    )


@dataclass(frozen=True)
class SuiteRunShape:
    """What a suite run sends: its cases (name, prompt, expected JSON) and settings."""

    cases: list[tuple[str | None, str, str | None]]
    direction: str
    caller_number: str | None
    stagger: int
    repeat: int

    @property
    def runs(self) -> int:
        return len(self.cases) * self.repeat


def suite_run_shape(suite: Suite, *, repeat: int | None, stagger: int | None) -> SuiteRunShape:
    """A suite's run with `repeat` and `stagger` given for this run (None: the suite's
    setting, else the default). Raises CommandError when it would be too many runs."""
    settings = suite.settings
    repeat = repeat or settings.repeat or 1
    if stagger is None:
        stagger = (
            DEFAULT_STAGGER_SECONDS
            if settings.stagger_seconds is None
            else settings.stagger_seconds
        )
    check_run_count(len(suite.cases) * repeat)
    return SuiteRunShape(
        cases=[(case.name, case.scenario_prompt, case.expected_outcome) for case in suite.cases],
        direction=settings.direction or "outbound",
        caller_number=settings.caller_number,
        stagger=stagger,
        repeat=repeat,
    )


def bless(services: Services, batch_id: str, user_id: str) -> bool:
    """Make a finished suite run its suite's baseline on its target; False if it cannot be
    (not finished, not a suite run, or blessed already)."""
    db = services.db
    batch = batch_store.get_batch(db, batch_id)
    if batch is None or batch.finished_at is None:
        return False
    with db.atomic():
        if not batch_store.bless(db, batch, user_id):
            return False
        audit.blessed(db, batch, user_id)
    publish_batch(services, batch_id)
    return True


def decide(
    db: Database,
    batch_id: str,
    to: BatchStatus,
    user_id: str,
    *,
    created_after: str = "",
    approved: bool = False,
) -> bool:
    """Claim a proposed batch and record who decided what (Start: consent, with the estimate),
    in one transaction: True only for the one caller that did it. A decision that cannot be
    recorded is not made (it raises). Consent reserves the estimate of every run in the same
    transaction, or raises `budgets.OverCap` (nothing claimed) over a spend cap an admin has
    not `approved`."""
    with db.atomic():
        if not batch_store.claim_batch(
            db, batch_id, to=to, by=user_id, created_after=created_after
        ):
            return False
        batch = batch_store.get_batch(db, batch_id)
        assert batch is not None
        audit.batch_decided(db, batch, audit.decision_of(to), user_id)
        if to == "launching":
            budgets.reserve(db, budgets.batch_charge(db, batch), approved=approved)
    return True


def claim_approved(db: Database, batch_id: str, user_id: str) -> bool:
    """Consent given by `user_id` over a cap, now approved by an admin: claimed at most once."""
    return decide(db, batch_id, "launching", user_id, approved=True)


def cancel(services: Services, batch_id: str, user_id: str) -> BatchOutcome:
    if decide(services.db, batch_id, "cancelled", user_id):
        return Cancelled()
    return BatchAlreadyDecided(batch_store.get_batch(services.db, batch_id))


async def start(services: Services, batch_id: str, user_id: str) -> BatchOutcome:
    """Send the batch behind a confirmation: one set of ThunderPhone batches, however often
    Start is pressed."""
    db = services.db
    try:
        consented = decide(
            db, batch_id, "launching", user_id, created_after=now_iso(CONFIRMATION_LIFETIME)
        )
    except sqlite3.Error as error:
        log.exception("consent to batch %s not recorded", batch_id)
        return NotRecorded(str(error))
    except budgets.OverCap as over:
        return budgets.stopped(services, ("batch", batch_id), user_id, over)
    if not consented:
        if decide(db, batch_id, "expired", user_id):
            return ConfirmationExpired()
        return BatchAlreadyDecided(batch_store.get_batch(db, batch_id))
    return await proceed(services, batch_id)


async def proceed(services: Services, batch_id: str) -> BatchOutcome:
    """Send a batch just claimed (consented to): the card, then its parts."""
    db = services.db
    batch = batch_store.get_batch(db, batch_id)
    assert batch is not None
    budgets.warn(services, batch.team_id, batch.channel_id)
    card = batch_card_key(batch_id)
    # The card goes up before any money is spent: where the bot cannot post, nothing starts.
    report = build_report(db, batch_id, services.threshold)
    assert report is not None
    services.outbox.show(card, batch.channel_id, batch_card(report))
    shown = await services.outbox.wait(card, timeout=CARD_WAIT.total_seconds())
    if shown.ts is None:
        cannot = shown.failed or "Slack did not answer in time"
        services.outbox.withdraw(card)
        with db.atomic():
            batch_store.set_batch_status(db, batch_id, "failed", error=f"cannot post: {cannot}")
            skipped = batch_store.skip_pending_parts(db, batch_id, f"cannot post: {cannot}")
            if skipped:
                runs = len(batch_store.get_items(db, batch_id))
                audit.batch_not_started(db, batch, f"cannot post: {cannot}", runs)
        return CannotPost(cannot)
    outcome = await launch_claimed(db, services.thunderphone, batch)
    publish_batch(services, batch_id)
    if isinstance(outcome, BatchStarted):
        return replace(outcome, card_ts=shown.ts)
    return outcome


async def launch_claimed(
    db: Database, thunderphone: ThunderPhoneClient, batch: BatchRecord
) -> BatchOutcome:
    """Send a batch already claimed (`claim_batch` to launching) and record how it went:
    BatchStarted, Refused, or Unclear when no part is known to have started."""
    items = batch_store.get_items(db, batch.id)
    problem = await send_parts(db, thunderphone, batch, items)
    parts = batch_store.get_parts(db, batch.id)
    started = sum(1 for item in batch_store.get_items(db, batch.id) if item.run_id is not None)
    launched = [part for part in parts if part.status == "launched"]
    unclear = [part for part in parts if part.status == "unknown"]
    status: BatchStatus = "partial" if launched or unclear else "failed"
    if len(launched) == len(parts):
        status = "launched"
    batch_store.set_batch_status(db, batch.id, status, error=problem)
    if not launched and unclear:
        return Unclear(problem or "no answer")
    if not launched:
        return Refused(problem or "ThunderPhone refused the batch")
    return BatchStarted(batch, started, len(items), problem)


async def send_parts(
    db: Database, thunderphone: ThunderPhoneClient, batch: BatchRecord, items: list[BatchItem]
) -> str | None:
    """Send each part once, in order; stop at the first that is refused or unclear. Returns
    why the rest did not start, if they did not."""
    for part in batch_store.get_parts(db, batch.id):
        if not batch_store.claim_part(db, batch.id, part.part):
            continue
        prompts = [item.prompt for item in items if item.part == part.part]
        request = BatchRequest(
            target_type=batch.target_type,  # type: ignore[arg-type]
            target_id=batch.target_id,
            direction=batch.direction,  # type: ignore[arg-type]
            consent_to_charge=True,
            target_number=batch.caller_number,
            run_count=len(prompts),
            stagger_seconds=batch.stagger,
            scenario_prompts=prompts,
            name=part_name(batch.id, part.part),
        )
        try:
            created = await thunderphone.create_batch(request)
            if len(created.run_ids) < len(prompts):
                # The answer may leave its runs out: ask for them (a read, safe to repeat).
                with contextlib.suppress(ThunderPhoneError):
                    created = await thunderphone.get_batch(created.id)
        except ThunderPhoneRejected as error:
            log.warning("ThunderPhone refused part %s of batch %s: %s", part.part, batch.id, error)
            with db.atomic():
                if batch_store.finish_part(
                    db, batch.id, part.part, status="refused", error=error.user_message
                ):
                    audit.part_settled(
                        db, batch, part.part, "launch_failed", error=error.user_message
                    )
            batch_store.skip_pending_parts(db, batch.id, NOT_SENT_AFTER_REFUSAL)
            return error.user_message
        except ThunderPhoneError as error:
            log.warning("unclear answer to part %s of batch %s: %s", part.part, batch.id, error)
            with db.atomic():
                if batch_store.finish_part(
                    db, batch.id, part.part, status="unknown", error=str(error)
                ):
                    audit.part_settled(db, batch, part.part, "launch_unclear", error=str(error))
            batch_store.skip_pending_parts(db, batch.id, NOT_SENT_WHILE_UNCLEAR)
            return f"ThunderPhone didn't answer clearly about runs {_span(items, part.part)}"
        adopt_part(db, batch, part.part, created)
    return None


def _span(items: list[BatchItem], part: int) -> str:
    positions = [item.position + 1 for item in items if item.part == part]
    return f"{positions[0]}-{positions[-1]}" if len(positions) > 1 else str(positions[0])


def adopt_part(db: Database, batch: BatchRecord, part: int, created: Batch) -> None:
    """Record the ThunderPhone batch created for a part and the runs it holds (in the order of
    its prompts); the first caller records them, later ones change nothing."""
    expected = sum(1 for item in batch_store.get_items(db, batch.id) if item.part == part)
    if len(created.run_ids) < expected:
        # Created (and billed), but which runs are ours is not known yet: looked for again
        # by the poller, never sent again.
        unlisted = "ThunderPhone has not listed these runs yet"
        with db.atomic():
            if batch_store.finish_part(
                db, batch.id, part, status="unknown", tp_batch_id=created.id, error=unlisted
            ):
                audit.part_settled(db, batch, part, "launch_unclear", error=unlisted)
        return
    with db.atomic():
        if not batch_store.finish_part(
            db, batch.id, part, status="launched", tp_batch_id=created.id
        ):
            return
        audit.part_settled(db, batch, part, "launched")
        batch_store.assign_runs(db, batch.id, part, created.run_ids)
        for item in batch_store.get_items(db, batch.id):
            if item.part != part or item.run_id is None:
                continue
            if run_store.get_run(db, item.run_id) is not None:
                continue
            run_store.save_run(
                db,
                RunRecord(
                    run_id=item.run_id,
                    team_id=batch.team_id,
                    channel_id=batch.channel_id,
                    started_by=batch.decided_by or batch.user_id,
                    target_type=batch.target_type,
                    target_id=batch.target_id,
                    target_name=batch.target_name,
                    direction=batch.direction,
                    caller_number=batch.caller_number,
                    scenario_prompt=item.prompt,
                    status="queued",
                    created_at=batch.decided_at or "",
                    batch_id=batch.id,
                    position=item.position,
                ),
            )


async def reconcile_parts(services: Services) -> None:
    """Settle batches the bot stopped while starting; look for the parts whose answer was
    lost, by their names; call off those not found after a while."""
    for batch_id in settle_stalled(services.db):
        publish_batch(services, batch_id)
    unsettled = batch_store.unsettled_parts(
        services.db, updated_before=now_iso(PART_ANSWER_TIMEOUT)
    )
    if not unsettled:
        return
    for batch_id in await look_for_parts(services.db, services.thunderphone, unsettled):
        publish_batch(services, batch_id)


def settle_stalled(db: Database) -> list[str]:
    """Batches left `launching` by a stop: the parts never sent stay unsent (the person is
    told on the card), the rest are settled as they stand. Returns their ids."""
    settled = []
    for batch in batch_store.stalled_batches(db, decided_before=now_iso(PART_ANSWER_TIMEOUT)):
        with db.atomic():
            pending = [p.part for p in batch_store.get_parts(db, batch.id) if p.status == "pending"]
            if batch_store.skip_pending_parts(db, batch.id, NOT_SENT_AFTER_STOP):
                items = batch_store.get_items(db, batch.id)
                runs = sum(1 for item in items if item.part in pending)
                audit.batch_not_started(db, batch, NOT_SENT_AFTER_STOP, runs)
        _settle_status(db, batch.id)
        settled.append(batch.id)
    return settled


async def look_for_parts(
    db: Database, thunderphone: ThunderPhoneClient, unsettled: list[BatchPart]
) -> list[str]:
    """`reconcile_parts` on the database and client alone: adopt each part found by its name,
    call off those not found within the search window. Returns the batch of each part looked
    at, in order, so their messages can be brought up to date."""
    looked_at: list[str] = []
    listed = await thunderphone.list_batches()
    by_name = {b.name: b for b in listed}
    times = [b.created_at for b in listed if b.created_at is not None]
    oldest = min(times).isoformat() if times else None
    for part in unsettled:
        batch = batch_store.get_batch(db, part.batch_id)
        if batch is None:
            continue
        found = by_name.get(part_name(batch.id, part.part))
        if found is not None:
            log.info(
                "part %s of batch %s found as ThunderPhone batch %s", part.part, batch.id, found.id
            )
            if not found.run_ids:
                found = await thunderphone.get_batch(found.id)
            adopt_part(db, batch, part.part, found)
            if batch.status != "launched":
                _settle_status(db, batch.id)
        elif part.updated_at < now_iso(SEARCH_WINDOW) and (
            not listed or (oldest is not None and oldest < part.updated_at)
        ):
            # Called off only when the list reaches back past the part: a list that stops
            # short proves nothing.
            nothing = "ThunderPhone has no record of these runs, so nothing was charged"
            with db.atomic():
                if batch_store.finish_part(
                    db, batch.id, part.part, status="refused", error=nothing
                ):
                    audit.part_settled(db, batch, part.part, "launch_failed", error=nothing)
            _settle_status(db, batch.id)
        looked_at.append(batch.id)
    return looked_at


def _settle_status(db: Database, batch_id: str) -> None:
    parts = batch_store.get_parts(db, batch_id)
    launched = sum(part.status == "launched" for part in parts)
    unsettled = any(part.status in ("launching", "unknown") for part in parts)
    status: BatchStatus = "partial" if launched or unsettled else "failed"
    if launched == len(parts):
        status = "launched"
    batch_store.set_batch_status(db, batch_id, status)
