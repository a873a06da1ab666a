"""Comparing targets: the same scenarios against each, one consent, one card.

`/testcall compare <suite|"prompt"> <target> <target> … [--repeat K]` plans one batch per
target (`bot.batches.plan_on`) with the same cases, in the same order, with no stagger between
launches, and a `compares` row that owns them. One confirmation asks for the total. Start
claims the compare (only one click wins), puts its card up (where the bot cannot post, nothing
starts), then claims and sends each target's batch in turn; a request ThunderPhone refuses, or
answers unclearly, is never sent again (an unclear one is looked for by `bot.batches`).

A batch of a compare has no card of its own: each run replies in the thread of the compare's
card, headed by its target, and the card is redrawn (`publish_compare`). Its table has a row
per target: product tier (the call log's `product`, read off one call of each target once the
compare is over), runs, mean score, p50 / p95 duration, agent response latency, mean cost and
failures, the best of each column starred once every run is done. The first caller to see it
done (`storage.compares.mark_finished`) shares the chart, score against duration per target,
in the card's thread, once.

Figures (`target_figures`, pure):

- percentiles are nearest-rank: the p-th percentile of n sorted values is the value at rank
  ceil(p / 100 × n), counting from 1, so it is always one of the values measured;
- agent response latency is, for each agent turn whose previous spoken turn is the caller's,
  the agent turn's `start_ms` minus the caller turn's `end_ms` (tool turns in between count
  towards the wait; an agent that starts before the caller has finished waited 0 ms). A pair
  missing either timestamp is left out, and counted;
- the mean score is over graded runs, the mean cost over billed runs (a run that failed before
  its call existed costs nothing), durations over runs whose call has one; failures are the
  runs that did not pass (below the score threshold, or short of their case's expectation).
"""

from __future__ import annotations

import asyncio
import logging
import math
import sqlite3
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from bot import audit, budgets
from bot.batch_report import BatchReport, build_report
from bot.batches import PART_ANSWER_TIMEOUT, UnknownSuite, launch_claimed, plan_on
from bot.blocks.common import target_plain, target_text
from bot.budgets import OverBudget
from bot.commands import MAX_RUNS_PER_REQUEST, CommandError, CompareCommand
from bot.launch import CARD_WAIT, CONFIRMATION_LIFETIME, resolve_target
from bot.outcomes import (
    BatchStarted,
    Cancelled,
    CannotPost,
    ConfirmationExpired,
    NotRecorded,
    Refused,
    Unclear,
)
from bot.publish import run_result_key
from bot.services import Services
from bot.suites import suite_from_record
from bot.thunderphone import ThunderPhoneError
from bot.verdicts import spoken_turns
from storage import batches as batch_store
from storage import compares as compare_store
from storage import suites as suite_store
from storage.db import now_iso
from storage.models import (
    BatchItem,
    BatchRecord,
    BatchStatus,
    CompareRecord,
    CompareStatus,
    MessageKey,
)

log = logging.getLogger(__name__)

CALLER_ROLES = frozenset({"user", "caller"})
AGENT_ROLES = frozenset({"assistant", "agent"})
NOT_SENT_AFTER_STOP = "not sent: the bot stopped while starting this compare"
CANNOT_POST = "cannot post"
REPLIES_WAIT = timedelta(minutes=2)  # how long the chart waits for the runs' replies
# The columns that have a best target, each with the figure it is judged on (smaller wins),
# at the precision the card shows, so targets that read the same tie.
COLUMNS = ("score", "duration", "latency", "cost", "failures")


def compare_card_key(compare_id: str) -> MessageKey:
    return ("compare", compare_id, "card")


# ---------------------------------------------------------------------------------------------
# Figures (pure)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank `p`-th percentile (0 < p <= 100) of `values`: the value at rank
    ceil(p / 100 × n) in sorted order; None without values."""
    if not 0 < p <= 100:
        raise ValueError(f"a percentile is above 0 and at most 100, not {p}")
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _ms(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) else None


def response_latencies(transcript: Sequence[Mapping[str, Any]]) -> tuple[list[int], int]:
    """(the agent's response latencies in ms, the replies left out for want of a timestamp).

    A reply is an agent turn whose previous spoken turn is the caller's; its latency is its
    `start_ms` minus that caller turn's `end_ms`, at least 0. Tool turns are not spoken."""
    gaps: list[int] = []
    left_out = 0
    previous: Mapping[str, Any] | None = None
    previous_role = ""
    for place, role, _ in spoken_turns(transcript):
        entry = transcript[place - 1]
        role = role.lower()
        if role in AGENT_ROLES and previous is not None and previous_role in CALLER_ROLES:
            start, end = _ms(entry.get("start_ms")), _ms(previous.get("end_ms"))
            if start is None or end is None:
                left_out += 1
            else:
                gaps.append(max(0, start - end))
        previous, previous_role = entry, role
    return gaps, left_out


@dataclass(frozen=True)
class Latency:
    """The agent's response latency over every reply of a target's runs."""

    p50_ms: int | None = None
    p95_ms: int | None = None
    replies: int = 0  # replies measured
    left_out: int = 0  # replies without the timestamps to measure them


@dataclass(frozen=True)
class TargetFigures:
    """One row of the compare's table: a target and what its runs came to so far."""

    batch_id: str
    target_type: str
    target_id: int
    label: str  # `Support agent (agent 12)`, or `agent 12` until ThunderPhone names it
    name: str  # the agent's (or number's) name, when ThunderPhone gave one
    tier: str | None  # the call log's `product`; None until read
    planned: int
    started: int
    done: int
    grading: int
    failures: int
    spent_cents: int  # billed so far
    mean_score: float | None  # 0-1
    duration_p50: int | None  # seconds
    duration_p95: int | None
    latency: Latency
    mean_cost_cents: float | None
    points: tuple[tuple[int, float], ...] = ()  # (duration s, score 0-1) of each scored run
    not_started: tuple[str, ...] = ()  # why parts of its runs did not start
    unclear: bool = False  # ThunderPhone's answer about some runs is still being looked for

    @property
    def target(self) -> str:
        return target_text(self.target_type, self.target_id)


def target_label(batch: BatchRecord, name: str = "") -> str:
    """A target as plain text: `Support agent (agent 12)` when its name is known (`name`, else
    the batch's), else `agent 12`."""
    return target_plain(batch.target_type, batch.target_id, name or batch.target_name)


def target_figures(report: BatchReport, tier: str | None = None) -> TargetFigures:
    """A target's row, from its batch as stored: its runs, grades and transcripts."""
    batch = report.batch
    outcomes = [
        row.outcome for row in report.rows if row.outcome is not None and row.outcome.finished
    ]
    scores = [o.score for o in outcomes if o.score is not None]
    durations = [o.duration_seconds for o in outcomes if o.duration_seconds is not None]
    costs = [o.cost_cents for o in outcomes if o.cost_cents is not None]
    gaps: list[int] = []
    left_out = 0
    for outcome in outcomes:
        measured, missing = response_latencies(outcome.transcript)
        gaps += measured
        left_out += missing
    p50, p95 = percentile(gaps, 50), percentile(gaps, 95)
    d50, d95 = percentile(durations, 50), percentile(durations, 95)
    name = report.target_name
    return TargetFigures(
        batch_id=batch.id,
        target_type=batch.target_type,
        target_id=batch.target_id,
        label=target_label(batch, name),
        name=name,
        tier=tier,
        planned=len(report.rows),
        started=report.started,
        done=len(outcomes),
        grading=report.progress.grading,
        failures=report.progress.failed,
        spent_cents=report.progress.cost_cents,
        mean_score=sum(scores) / len(scores) if scores else None,
        duration_p50=None if d50 is None else int(d50),
        duration_p95=None if d95 is None else int(d95),
        latency=Latency(
            None if p50 is None else int(p50),
            None if p95 is None else int(p95),
            replies=len(gaps),
            left_out=left_out,
        ),
        mean_cost_cents=sum(costs) / len(costs) if costs else None,
        points=tuple(
            (o.duration_seconds, o.score)
            for o in outcomes
            if o.duration_seconds is not None and o.score is not None
        ),
        not_started=tuple(part.error or "not sent" for part in report.not_started),
        unclear=bool(report.unclear),
    )


def _ranking(figures: TargetFigures, column: str) -> tuple[float, ...] | None:
    """What a column is judged on, as shown (smaller is better); None: nothing to judge."""
    if column == "score":
        return None if figures.mean_score is None else (-round(figures.mean_score * 100),)
    if column == "duration":
        if figures.duration_p50 is None or figures.duration_p95 is None:
            return None
        return (figures.duration_p50, figures.duration_p95)
    if column == "latency":
        latency = figures.latency
        if latency.p50_ms is None or latency.p95_ms is None:
            return None
        return (round(latency.p50_ms / 10), round(latency.p95_ms / 10))
    if column == "cost":
        return None if figures.mean_cost_cents is None else (round(figures.mean_cost_cents),)
    if column == "failures":
        return None if not figures.done else (round(figures.failures / figures.done, 6),)
    raise ValueError(column)


def best_marks(targets: Sequence[TargetFigures]) -> dict[str, frozenset[int]]:
    """For each column, the targets (by index) that do best on it: the highest mean score; the
    lowest duration and latency (p50, then p95), mean cost and share of failures. Ties share
    the mark; a column where fewer than two targets have a figure, or all read the same, has
    none."""
    marks: dict[str, frozenset[int]] = {}
    for column in COLUMNS:
        ranked = {
            index: key
            for index, figures in enumerate(targets)
            if (key := _ranking(figures, column)) is not None
        }
        if len(ranked) < 2 or len(set(ranked.values())) == 1:
            marks[column] = frozenset()
            continue
        best = min(ranked.values())
        marks[column] = frozenset(index for index, key in ranked.items() if key == best)
    return marks


@dataclass(frozen=True)
class CompareView:
    """Everything the compare's card shows."""

    compare: CompareRecord
    targets: list[TargetFigures]
    cases: int  # scenarios per target (before --repeat)
    finished: bool
    best: dict[str, frozenset[int]] = field(default_factory=dict)

    @property
    def planned(self) -> int:
        return sum(target.planned for target in self.targets)

    @property
    def done(self) -> int:
        return sum(target.done for target in self.targets)

    @property
    def started(self) -> int:
        return sum(target.started for target in self.targets)


def compare_view(
    compare: CompareRecord, reports: Sequence[BatchReport], tiers: Mapping[str, str]
) -> CompareView:
    """The card's content from each target's report; starred only once every run is done."""
    targets = [target_figures(report, tiers.get(report.batch.id)) for report in reports]
    finished = compare.status not in ("proposed", "launching") and all(
        report.finished for report in reports
    )
    first = reports[0].rows if reports else []
    cases = len(first) // max(compare.repeat, 1)
    best = best_marks(targets) if finished else {}
    return CompareView(compare, targets, cases, finished, best)


# ---------------------------------------------------------------------------------------------
# Outcomes of a click


@dataclass(frozen=True)
class CompareStarted:
    """Some or all runs started; `problems` says, per target, why the others did not."""

    compare: CompareRecord
    started: int
    total: int
    problems: tuple[str, ...] = ()
    card_ts: str | None = None  # the compare's card, in its channel


@dataclass(frozen=True)
class CompareAlreadyDecided:
    compare: CompareRecord | None  # None: the confirmation is no longer on record


CompareOutcome = (
    CompareStarted
    | CompareAlreadyDecided
    | Cancelled
    | ConfirmationExpired
    | CannotPost
    | Refused
    | Unclear
    | NotRecorded
    | OverBudget
)


# ---------------------------------------------------------------------------------------------
# Proposing


@dataclass(frozen=True)
class Proposal:
    """A proposed compare, for its confirmation: each target's batch and recent costs."""

    compare: CompareRecord
    targets: list[tuple[BatchRecord, list[int]]]
    items: list[BatchItem]  # one target's planned runs (every target has the same)


def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: CompareCommand
) -> dict[str, Any]:
    """Record a proposed compare; the confirmation to show. Raises `bot.launch.UnknownAlias`,
    `bot.batches.UnknownSuite`, or `CommandError` (the same target twice, too many runs)."""
    from bot.blocks.compare import confirmation  # the builder reads this module's types

    return confirmation(
        plan_compare(
            services, team_id=team_id, channel_id=channel_id, user_id=user_id, command=command
        )
    )


def plan_compare(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: CompareCommand
) -> Proposal:
    """`propose` without the rendering: the compare and one proposed batch per target, all
    stored in one go, nothing sent."""
    db = services.db
    resolved = [resolve_target(services, team_id, target) for target in command.targets]
    seen: dict[tuple[str, int], str] = {}
    for target_type, target_id, label in resolved:
        earlier = seen.setdefault((target_type, target_id), label)
        if earlier != label:
            raise CommandError(
                f"{earlier} and {label} are the same target "
                f"({target_plain(target_type, target_id)}). Name each target once.",
                "compare",
            )
    cases: list[tuple[str | None, str, str | None]]
    direction, caller = "outbound", None
    if command.suite is not None:
        record = suite_store.get_suite(db, command.suite)
        if record is None:
            raise UnknownSuite(command.suite)
        suite = suite_from_record(record)
        cases = [(c.name, c.scenario_prompt, c.expected_outcome) for c in suite.cases]
        direction = suite.settings.direction or "outbound"
        caller = suite.settings.caller_number
    else:
        cases = [(None, command.prompt or "", None)]
    runs = len(cases) * command.repeat
    if not runs:
        raise CommandError(f"Suite {command.suite} has no cases to run.", "compare")
    if runs > MAX_RUNS_PER_REQUEST:
        raise CommandError(
            f"That is {runs} runs on each target; a compare runs at most "
            f"{MAX_RUNS_PER_REQUEST} on each (cases × --repeat).",
            "compare",
        )
    with db.atomic():
        compare = compare_store.save_compare(
            db,
            CompareRecord(
                id=compare_store.new_compare_id(),
                team_id=team_id,
                channel_id=channel_id,
                user_id=user_id,
                suite=command.suite,
                prompt=command.prompt if command.suite is None else None,
                repeat=command.repeat,
            ),
        )
        targets: list[tuple[BatchRecord, list[int]]] = []
        items: list[BatchItem] = []
        for target in resolved:
            batch, items, costs = plan_on(
                db,
                resolved=target,
                team_id=team_id,
                channel_id=channel_id,
                user_id=user_id,
                cases=cases,
                direction=direction,
                caller_number=caller,
                stagger=0,
                repeat=command.repeat,
            )
            compare_store.attach_batch(db, compare.id, batch.id)
            targets.append((batch.model_copy(update={"compare_id": compare.id}), costs))
    return Proposal(compare, targets, items)


# ---------------------------------------------------------------------------------------------
# Deciding


def _decide(
    db: Database,
    compare_id: str,
    to: CompareStatus,
    user_id: str,
    *,
    created_after: str = "",
    approved: bool = False,
) -> bool:
    """Claim a proposed compare and record who decided what (Start: consent, with the estimate
    over every target), in one transaction: True only for the one caller that did it. A
    decision that cannot be recorded is not made (it raises). Consent reserves the estimate
    of every run on every target in the same transaction, or raises `budgets.OverCap`
    (nothing claimed) over a spend cap an admin has not `approved`."""
    with db.atomic():
        if not compare_store.claim_compare(
            db, compare_id, to=to, by=user_id, created_after=created_after
        ):
            return False
        compare = compare_store.get_compare(db, compare_id)
        assert compare is not None
        audit.compare_decided(db, compare, audit.decision_of(to), user_id)
        if to == "launching":
            budgets.reserve(db, budgets.compare_charge(db, compare), approved=approved)
    return True


def claim_approved(db: Database, compare_id: str, user_id: str) -> bool:
    """Consent given by `user_id` over a cap, now approved by an admin: claimed at most once."""
    return _decide(db, compare_id, "launching", user_id, approved=True)


def cancel(services: Services, compare_id: str, user_id: str) -> CompareOutcome:
    db = services.db
    if _decide(db, compare_id, "cancelled", user_id):
        _close_batches(db, compare_id, "cancelled", user_id)
        return Cancelled()
    return CompareAlreadyDecided(_settled(services, compare_id))


def _close_batches(db: Database, compare_id: str, status: BatchStatus, user_id: str) -> None:
    """The compare will never be sent: neither will any of its batches."""
    for batch in compare_store.batches_of(db, compare_id):
        batch_store.claim_batch(db, batch.id, to=status, by=user_id)


async def start(services: Services, compare_id: str, user_id: str) -> CompareOutcome:
    """Send the compare behind a confirmation: one batch per target, however often Start is
    pressed."""
    db = services.db
    try:
        consented = _decide(
            db, compare_id, "launching", user_id, created_after=now_iso(CONFIRMATION_LIFETIME)
        )
    except sqlite3.Error as error:
        log.exception("consent to compare %s not recorded", compare_id)
        return NotRecorded(str(error))
    except budgets.OverCap as over:
        return budgets.stopped(services, ("compare", compare_id), user_id, over)
    if not consented:
        if _decide(db, compare_id, "expired", user_id):
            _close_batches(db, compare_id, "expired", user_id)
            return ConfirmationExpired()
        return CompareAlreadyDecided(_settled(services, compare_id))
    return await proceed(services, compare_id)


async def proceed(services: Services, compare_id: str) -> CompareOutcome:
    """Send a compare just claimed (consented to): the card, then one batch per target."""
    db = services.db
    compare = compare_store.get_compare(db, compare_id)
    assert compare is not None
    user_id = compare.decided_by or compare.user_id
    budgets.warn(services, compare.team_id, compare.channel_id)
    card = compare_card_key(compare_id)
    # The card goes up before any money is spent: where the bot cannot post, nothing starts.
    _show_card(services, compare)
    shown = await services.outbox.wait(card, timeout=CARD_WAIT.total_seconds())
    if shown.ts is None:
        cannot = shown.failed or "Slack has not taken the card yet"
        services.outbox.withdraw(card)
        for closed in compare_store.batches_of(db, compare_id):
            if batch_store.claim_batch(db, closed.id, to="failed", by=user_id):
                batch_store.set_batch_status(
                    db, closed.id, "failed", error=f"{CANNOT_POST}: {cannot}"
                )
                batch_store.skip_pending_parts(db, closed.id, f"{CANNOT_POST}: {cannot}")
        with db.atomic():
            compare_store.set_compare_status(
                db, compare_id, "failed", error=f"{CANNOT_POST}: {cannot}"
            )
            audit.compare_not_started(db, compare, f"{CANNOT_POST}: {cannot}")
        return CannotPost(cannot, refused=shown.failed is not None)

    started = total = 0
    problems: list[str] = []
    unclear: list[str] = []
    for planned in compare_store.batches_of(db, compare_id):
        total += len(batch_store.get_items(db, planned.id))
        # Claimed just before its request: a batch is sent by one caller, at most once.
        if not batch_store.claim_batch(db, planned.id, to="launching", by=user_id):
            problems.append(f"{target_label(planned)}: {NOT_SENT_AFTER_STOP}")
            continue
        batch = batch_store.get_batch(db, planned.id)
        assert batch is not None
        outcome = await launch_claimed(db, services.thunderphone, batch)
        match outcome:
            case BatchStarted(_, count, _, problem):
                started += count
                if problem:
                    problems.append(f"{target_label(batch)}: {problem}")
            case Unclear(reason):
                unclear.append(f"{target_label(batch)}: {reason}")
            case Refused(reason):
                problems.append(f"{target_label(batch)}: {reason}")
        publish_compare(services, compare_id)
    batches = compare_store.batches_of(db, compare_id)
    compare_store.settle_launching(db, compare_id, _status_of(batches))
    publish_compare(services, compare_id)
    compare = compare_store.get_compare(db, compare_id)
    assert compare is not None
    if not started and unclear:
        return Unclear("; ".join(unclear))
    if not started:
        return Refused("; ".join(problems) or "ThunderPhone refused every target")
    return CompareStarted(compare, started, total, tuple(problems + unclear), shown.ts)


def _status_of(batches: Sequence[BatchRecord]) -> CompareStatus:
    statuses = [batch.status for batch in batches]
    if statuses and all(status == "launched" for status in statuses):
        return "launched"
    if any(status in ("launched", "partial", "launching") for status in statuses):
        return "partial"
    return "failed"


def _settled(services: Services, compare_id: str) -> CompareRecord | None:
    """The compare, after settling it if the bot stopped while starting it."""
    compare = compare_store.get_compare(services.db, compare_id)
    if compare is not None and _settle_stalled(services.db, compare):
        publish_compare(services, compare_id)
        compare = compare_store.get_compare(services.db, compare_id)
    return compare


def _settle_stalled(db: Database, compare: CompareRecord) -> bool:
    """A compare still `launching` long after its click lost its sender (the bot stopped):
    the targets never sent stay unsent, and it is settled as it stands. True if it was."""
    if compare.status != "launching" or (compare.decided_at or "") > now_iso(PART_ANSWER_TIMEOUT):
        return False
    who = compare.decided_by or compare.user_id
    for batch in compare_store.batches_of(db, compare.id):
        if batch_store.claim_batch(db, batch.id, to="failed", by=who):
            batch_store.set_batch_status(db, batch.id, "failed", error=NOT_SENT_AFTER_STOP)
            batch_store.skip_pending_parts(db, batch.id, NOT_SENT_AFTER_STOP)
    return compare_store.settle_launching(
        db, compare.id, _status_of(compare_store.batches_of(db, compare.id))
    )


# ---------------------------------------------------------------------------------------------
# Showing


def reply_heading(batch: BatchRecord, heading: str | None, name: str = "") -> str:
    """What heads a run's reply in a compare's thread: its target (named `name` when
    ThunderPhone gave the run one), then its case."""
    from bot.blocks.compare import target_heading

    return target_heading(target_label(batch, name), heading)


def _reports(services: Services, compare_id: str) -> list[BatchReport]:
    reports = []
    for batch in compare_store.batches_of(services.db, compare_id):
        report = build_report(services.db, batch.id, services.threshold)
        if report is not None:
            reports.append(report)
    return reports


def _show_card(services: Services, compare: CompareRecord) -> CompareView:
    from bot.blocks.compare import compare_card

    tiers = compare_store.tiers_of(services.db, compare.id)
    view = compare_view(compare, _reports(services, compare.id), tiers)
    services.outbox.show(
        compare_card_key(compare.id),
        compare.channel_id,
        compare_card(view),
        notify_user=compare.decided_by or compare.user_id,
    )
    return view


def publish_compare(services: Services, compare_id: str) -> None:
    """Show the compare's card as it is now; the first caller to find every run of every
    target done starts sharing the chart (once)."""
    db = services.db
    compare = compare_store.get_compare(db, compare_id)
    if compare is None or compare.status in ("proposed", "cancelled", "expired"):
        return
    if (compare.error or "").startswith(CANNOT_POST):
        return  # its card never went up, and nothing started
    if _settle_stalled(db, compare):
        compare = compare_store.get_compare(db, compare_id)
        assert compare is not None
    view = _show_card(services, compare)
    if view.finished and compare_store.mark_finished(db, compare_id):
        _in_background(_finish(services, compare_id), name=f"compare-{compare_id[:8]}")


_BACKGROUND: set[asyncio.Task[None]] = set()


def _in_background(work: Coroutine[Any, Any, None], *, name: str) -> None:
    try:
        task = asyncio.get_running_loop().create_task(work, name=name)
    except RuntimeError:  # no event loop: not in the server, so nowhere to share a chart
        work.close()
        return
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def _finish(services: Services, compare_id: str) -> None:
    """Once every run is done: read each target's tier, show the final card, share the chart.
    Runs once per compare (`storage.compares.mark_finished`), in the background."""
    db = services.db
    try:
        await _read_tiers(services, compare_id)
        compare = compare_store.get_compare(db, compare_id)
        assert compare is not None
        error = await _share_chart(services, _show_card(services, compare))
    except Exception:  # no caller to tell: the card says so instead
        log.exception("sharing the chart of compare %s", compare_id)
        error = "something went wrong while drawing it"
    try:
        compare_store.record_chart(db, compare_id, error=error)
        # Final: a tier that could not be read says so, as does a chart that was not shared.
        finished = compare_store.get_compare(db, compare_id)
        assert finished is not None
        _show_card(services, finished)
    except Exception:
        log.exception("finishing compare %s", compare_id)


async def _read_tiers(services: Services, compare_id: str) -> None:
    """Each target's product tier, off one of its calls (reading a call is free)."""
    db = services.db
    known = compare_store.tiers_of(db, compare_id)
    for report in _reports(services, compare_id):
        if report.batch.id in known:
            continue
        call_id = next(
            (row.run.call_id for row in report.rows if row.run and row.run.call_id), None
        )
        if call_id is None:
            continue
        try:
            call = await services.thunderphone.get_call(call_id)
        except ThunderPhoneError as error:
            log.warning("tier of call %s (compare %s) not read: %s", call_id, compare_id, error)
            continue
        compare_store.set_tier(db, compare_id, report.batch.id, call.product)


async def _share_chart(services: Services, view: CompareView) -> str | None:
    """Upload the chart in the card's thread; None once shared (or when there is nothing to
    draw), else what went wrong."""
    from bot.blocks.compare import chart_alt_text, chart_comment, chart_title
    from bot.charts import CompareSeries, compare_png
    from bot.interactive import upload_file

    if not any(target.points for target in view.targets):
        return None
    card = compare_card_key(view.compare.id)
    shown = await services.outbox.wait(card, timeout=CARD_WAIT.total_seconds())
    if shown.ts is None:
        return shown.failed or "the card is not in Slack"
    # The chart ends the thread: it waits for the replies on their way (a while, no longer).
    loop = asyncio.get_running_loop()
    deadline = loop.time() + REPLIES_WAIT.total_seconds()
    for batch in compare_store.batches_of(services.db, view.compare.id):
        for item in batch_store.get_items(services.db, batch.id):
            left = deadline - loop.time()
            if item.run_id is not None and left > 0:
                await services.outbox.wait(run_result_key(item.run_id), timeout=left)
    series = [
        CompareSeries(
            label=target.label + (f" · {target.tier}" if target.tier else ""),
            points=target.points,
        )
        for target in view.targets
    ]
    png = await asyncio.to_thread(compare_png, series, title=chart_title(view))
    name = view.compare.suite or "prompt"
    return await upload_file(
        services,
        view.compare.channel_id,
        filename=f"compare-{name}-{view.compare.id[:8]}.png",
        content=png,
        comment=chart_comment(view),
        alt_text=chart_alt_text(view),
        thread_ts=shown.ts,
    )
