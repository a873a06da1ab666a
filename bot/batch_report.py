"""Where a batch stands, read from storage: each planned run with its result, the progress, and
for a finished suite run each case's verdict against the baseline. Read-only."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from sqlite_utils import Database

from bot.expectations import ExpectationError, Expected, parse_expected
from bot.verdicts import CaseChange, Counts, Progress, RunOutcome, compare, outcome_of, progress
from bot.verdicts import summary as summarise
from storage import batches as batch_store
from storage import runs as run_store
from storage.batches import BaselineChoice
from storage.models import BatchItem, BatchPart, BatchRecord, GradeRecord, RunRecord


@dataclass(frozen=True)
class Row:
    """One planned run of the batch, and what became of it."""

    item: BatchItem
    run: RunRecord | None
    grade: GradeRecord | None
    outcome: RunOutcome | None
    expected: Expected

    @property
    def case(self) -> str:
        return self.item.case_name or self.item.prompt

    @property
    def done(self) -> bool:
        """Finished, and graded where its verdict needs the grade."""
        return _done(self)


@dataclass(frozen=True)
class BatchReport:
    batch: BatchRecord
    rows: list[Row]
    parts: list[BatchPart]
    progress: Progress
    finished: bool  # every run that started is done (and graded, where that matters)
    changes: list[CaseChange] | None = None  # suite runs, once finished
    counts: Counts | None = None
    baseline: BatchRecord | None = None

    @property
    def started(self) -> int:
        return sum(1 for row in self.rows if row.item.run_id is not None)

    @property
    def target_name(self) -> str:
        """The target's name as ThunderPhone gave it for one of the runs, when it did."""
        named = (row.run.target_name for row in self.rows if row.run and row.run.target_name)
        return next(named, self.batch.target_name)

    @property
    def not_started(self) -> list[BatchPart]:
        return [part for part in self.parts if part.status in ("refused", "skipped")]

    @property
    def unclear(self) -> list[BatchPart]:
        return [part for part in self.parts if part.status in ("unknown", "launching")]


def expected_of(item: BatchItem) -> Expected:
    if item.expected is None:
        return Expected()
    try:
        return parse_expected(json.loads(item.expected))
    except (ValueError, ExpectationError):  # checked at import; kept readable regardless
        return Expected()


def _rows(db: Database, items: list[BatchItem]) -> list[Row]:
    rows = []
    for item in items:
        run = run_store.get_run(db, item.run_id) if item.run_id is not None else None
        grade = run_store.get_grade(db, run.call_id) if run else None
        transcript = run_store.get_transcript(db, run.call_id) if run else None
        outcome = outcome_of(run, grade, transcript) if run else None
        rows.append(Row(item, run, grade, outcome, expected_of(item)))
    return rows


def _done(row: Row) -> bool:
    outcome = row.outcome
    if outcome is None or not outcome.finished:
        return False
    needs_score = not row.expected.checkable or row.expected.min_score is not None
    if outcome.awaiting_grade and (needs_score or bool(row.expected.call_outcome)):
        return False
    # A score read off the call before its grade arrived has no outcome yet.
    provisional = row.grade is not None and row.grade.status == "provisional"
    return not (provisional and bool(row.expected.call_outcome))


def build_report(
    db: Database,
    batch_id: str,
    threshold: float,
    *,
    baseline: BaselineChoice = "auto",
    partial: bool = False,
) -> BatchReport | None:
    """Where the batch stands. A finished suite run is compared with its `baseline` (see
    `storage.batches.baseline_of`); with `partial`, an unfinished one is too, over the cases
    whose runs are all done (the others are left out of `changes`)."""
    batch = batch_store.get_batch(db, batch_id)
    if batch is None:
        return None
    rows = _rows(db, batch_store.get_items(db, batch_id))
    parts = batch_store.get_parts(db, batch_id)
    started = [row for row in rows if row.item.run_id is not None]
    settled = all(part.status not in ("pending", "launching", "unknown") for part in parts)
    finished = (
        settled
        and batch.status not in ("proposed", "launching")
        and all(_done(row) for row in started)
    )
    tally = progress(
        [row.outcome for row in started],
        len(started),
        threshold,
        expected=[row.expected for row in started],
    )
    report = BatchReport(batch, rows, parts, tally, finished)
    if not ((finished or partial) and batch.suite and started):
        return report
    against = batch_store.baseline_of(db, batch, baseline)
    before: dict[str, list[RunOutcome]] = defaultdict(list)
    if against is not None:
        for row in _rows(db, batch_store.get_items(db, against.id)):
            if row.outcome is not None:
                before[row.case].append(row.outcome)
    flaky_before = batch_store.flaky_cases(db, batch)
    now: dict[str, list[Row]] = defaultdict(list)
    for row in started:
        now[row.case].append(row)
    if not finished:  # partial: only the cases whose every run is done
        now = defaultdict(list, {c: r for c, r in now.items() if all(_done(x) for x in r)})
    changes = []
    for case, case_rows in now.items():
        current = [row.outcome for row in case_rows if row.outcome is not None]
        known = before.get(case, [])
        # Comparing transcripts is the costly part, and a finished run is republished on
        # every late grade or flag: a case whose runs did not change is not compared again.
        key = (batch.id, case, threshold, case in flaky_before, _seen(current), _seen(known))
        change = _COMPARED.get(key)
        if change is None:
            change = compare(
                case,
                current,
                known,
                expected=case_rows[0].expected,
                threshold=threshold,
                flaky_before=case in flaky_before,
            )
            if len(_COMPARED) >= COMPARED_KEPT:
                _COMPARED.clear()
            _COMPARED[key] = change
        changes.append(change)
    return BatchReport(batch, rows, parts, tally, finished, changes, summarise(changes), against)


COMPARED_KEPT = 2000
_COMPARED: dict[tuple[object, ...], CaseChange] = {}


def _seen(outcomes: list[RunOutcome]) -> tuple[object, ...]:
    """What a comparison reads of each run (its transcript is stored once, whole)."""
    return tuple(
        (
            o.run_id,
            o.status,
            o.score,
            o.call_outcome,
            o.grade_status,
            o.duration_seconds,
            o.cost_cents,
            o.error_message,
            len(o.transcript),
        )
        for o in outcomes
    )
