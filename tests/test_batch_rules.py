"""Rules of batches kept in storage: which run a suite run is compared with, blessing, flaky
history per target, and when a run's verdict may be given."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.batch_report import Row, _done
from bot.expectations import parse_expected
from bot.verdicts import outcome_of
from storage import batches as batch_store
from storage.db import open_db
from storage.models import BatchItem, BatchRecord, GradeRecord, RunRecord


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(str(tmp_path / "thunderbot.db"))


def suite_run(db: Database, name: str, created_at: str, *, target_id: int = 12) -> BatchRecord:
    batch = BatchRecord(
        id=name,
        team_id="T",
        channel_id="C",
        user_id="U",
        target_type="agent",
        target_id=target_id,
        suite="refunds",
        status="launched",
        created_at=created_at,
    )
    items = [BatchItem(position=0, case_name="refund-policy", prompt="Ask.")]
    return batch_store.save_batch(db, batch, items)


def test_a_run_is_compared_with_a_baseline_blessed_before_it_not_after(db: Database) -> None:
    first = suite_run(db, "a" * 32, "2026-11-01T10:00:00.000+00:00")
    second = suite_run(db, "b" * 32, "2026-11-02T10:00:00.000+00:00")
    third = suite_run(db, "c" * 32, "2026-11-03T10:00:00.000+00:00")
    for batch in (first, second, third):
        batch_store.mark_finished(db, batch.id)
    assert batch_store.bless(db, first, "U0LI")
    assert batch_store.baseline_of(db, second).id == first.id  # type: ignore[union-attr]
    # Blessing the third later changes nothing about what the second was compared with.
    assert batch_store.bless(db, third, "U0LI")
    assert batch_store.baseline_of(db, second).id == first.id  # type: ignore[union-attr]
    # The first may become the baseline again; blessing the current one is refused.
    assert batch_store.bless(db, first, "U0MARIA")
    assert not batch_store.bless(db, first, "U0MARIA")


def test_a_run_that_never_finished_is_no_baseline(db: Database) -> None:
    real = suite_run(db, "a" * 32, "2026-11-01T10:00:00.000+00:00")
    batch_store.mark_finished(db, real.id)
    suite_run(db, "b" * 32, "2026-11-02T10:00:00.000+00:00")  # refused: never finished
    later = suite_run(db, "c" * 32, "2026-11-03T10:00:00.000+00:00")
    assert batch_store.baseline_of(db, later).id == real.id  # type: ignore[union-attr]


def test_flaky_history_belongs_to_its_target(db: Database) -> None:
    on_12 = suite_run(db, "a" * 32, "2026-11-01T10:00:00.000+00:00")
    batch_store.record_verdicts(db, on_12.id, {"refund-policy": "flaky"})
    later_12 = suite_run(db, "b" * 32, "2026-11-02T10:00:00.000+00:00")
    later_13 = suite_run(db, "c" * 32, "2026-11-02T10:00:00.000+00:00", target_id=13)
    assert batch_store.flaky_cases(db, later_12) == {"refund-policy"}
    assert batch_store.flaky_cases(db, later_13) == set()


def test_a_provisional_score_does_not_settle_a_case_that_expects_an_outcome() -> None:
    run = RunRecord(
        run_id=1,
        team_id="T",
        channel_id="C",
        started_by="U",
        target_type="agent",
        target_id=12,
        status="completed",
        call_id=9,
    )
    provisional = GradeRecord(call_id=9, score=0.9, status="provisional")
    item = BatchItem(position=0, case_name="refund-policy", prompt="Ask.", run_id=1)
    wants_outcome = Row(
        item, run, provisional, outcome_of(run, provisional), parse_expected("success")
    )
    wants_score = Row(
        item, run, provisional, outcome_of(run, provisional), parse_expected({"min_score": 80})
    )
    assert not _done(wants_outcome), "waits for the grader's outcome"
    assert _done(wants_score), "a score is all it needs"


def test_a_case_is_compared_again_when_one_of_its_runs_changes() -> None:
    from bot.batch_report import _seen
    from bot.verdicts import RunOutcome

    graded = RunOutcome(status="completed", score=0.9, run_id=1, grade_status="completed")
    regraded = RunOutcome(status="completed", score=0.6, run_id=1, grade_status="completed")
    assert _seen([graded]) == _seen([graded])
    assert _seen([graded]) != _seen([regraded]), "a new grade is a new comparison"
