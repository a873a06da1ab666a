"""Storage rules that keep state right whatever order things happen in (a real SQLite file)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage import inbox, launches, messages
from storage import runs as run_store
from storage.db import now_iso, open_db
from storage.models import FlagRecord, GradeRecord, Launch, RunRecord


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(str(tmp_path / "thunderbot.db"))


def add_run(db: Database) -> RunRecord:
    return run_store.save_run(
        db,
        RunRecord(
            run_id=1, team_id="T", channel_id="C", started_by="U", target_type="agent", target_id=12
        ),
    )


def test_a_status_only_moves_forward(db: Database) -> None:
    add_run(db)
    run_store.merge_run(db, 1, {"status": "completed", "call_id": 9})
    run, changed = run_store.merge_run(db, 1, {"status": "in_progress", "call_id": None})
    assert (run.status, run.call_id, changed) == ("completed", 9, False)
    run, changed = run_store.merge_run(db, 1, {"status": "failed"})
    assert (run.status, changed) == ("completed", False), "a terminal status never changes"


def test_a_later_grade_wins_and_an_earlier_one_is_ignored(db: Database) -> None:
    later = GradeRecord(call_id=9, score=0.4, graded_at="2026-11-22T10:00:00+00:00")
    earlier = GradeRecord(call_id=9, score=0.9, graded_at="2026-11-22T09:00:00+00:00")
    assert run_store.merge_grade(db, later) is True
    assert run_store.merge_grade(db, earlier) is False
    assert run_store.merge_grade(db, later) is False
    stored = run_store.get_grade(db, 9)
    assert stored is not None and stored.score == 0.4


def test_a_failing_delivery_waits_longer_each_time(db: Database) -> None:
    assert inbox.store_events(db, [("evt", "call.graded", "{}")]) == [True]
    assert inbox.store_events(db, [("evt", "call.graded", "{}")]) == [False]
    assert [row["key"] for row in inbox.pending_events(db)] == ["evt"]
    inbox.mark_failed(db, "evt", "boom")
    assert inbox.pending_events(db) == [], "not due again at once"
    row = db.table("webhook_events").get("evt")
    assert row["attempts"] == 1 and row["error"] == "boom"
    db.execute("update webhook_events set next_attempt_at = '2000-01-01'")
    assert len(inbox.pending_events(db)) == 1
    inbox.mark_processed(db, "evt")
    assert inbox.pending_events(db) == []


def test_a_launch_is_claimed_once(db: Database) -> None:
    launch = launches.save_launch(
        db,
        Launch(id="L", team_id="T", channel_id="C", user_id="U", target_type="agent", target_id=12),
    )
    assert launches.claim_launch(db, launch.id, to="launching", by="U") is True
    assert launches.claim_launch(db, launch.id, to="launching", by="U2") is False
    assert launches.claim_launch(db, launch.id, to="cancelled", by="U2") is False
    stored = launches.get_launch(db, "L")
    assert stored is not None and (stored.status, stored.decided_by) == ("launching", "U")


def _launching(db: Database, launch_id: str) -> Launch:
    launch = launches.save_launch(
        db,
        Launch(
            id=launch_id,
            team_id="T",
            channel_id="C",
            user_id="U",
            target_type="agent",
            target_id=12,
        ),
    )
    assert launches.claim_launch(db, launch.id, to="launching", by="U")
    return launch


def test_a_launch_is_either_sent_or_called_off_as_unsent_never_both(db: Database) -> None:
    later = now_iso(timedelta(minutes=-1))  # every launch here was decided before it
    sent, stopped = _launching(db, "SENT"), _launching(db, "STOPPED")
    assert launches.unsent_launches(db, decided_before=now_iso(timedelta(minutes=3))) == [], (
        "a launch clicked a moment ago may be about to be sent"
    )
    unsent = launches.unsent_launches(db, decided_before=later)
    assert sorted(x.id for x in unsent) == ["SENT", "STOPPED"]
    assert launches.unsettled_launches(db, decided_before=later) == [], "nothing to look for"

    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    assert launches.mark_sent(db, sent.id) is True
    db.conn.set_trace_callback(None)
    update = next(i for i, sql in enumerate(statements) if sql.startswith("update launches"))
    assert "PRAGMA synchronous=FULL" in statements[:update], "flushed to disk before the money"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1, "other commits as before"
    assert launches.mark_sent(db, sent.id) is False, "sent once"
    assert launches.finish_launch(db, sent.id, status="failed", unsent=True) is False
    assert [x.id for x in launches.unsettled_launches(db, decided_before=later)] == ["SENT"]

    assert launches.finish_launch(db, stopped.id, status="failed", unsent=True) is True
    assert launches.mark_sent(db, stopped.id) is False, "called off: never sent after all"
    assert launches.unsent_launches(db, decided_before=later) == []
    stored = launches.get_launch(db, "STOPPED")
    assert stored is not None and (stored.status, stored.sent_at) == ("failed", None)


def test_an_interrupted_flag_can_be_taken_over_but_a_live_one_cannot(db: Database) -> None:
    flag = FlagRecord(run_id=1, call_id=9, user_id="U1", severity="info", title="t")
    assert run_store.claim_flag(db, flag, stale_before="2000-01-01") is True
    second = flag.model_copy(update={"user_id": "U2"})
    assert run_store.claim_flag(db, second, stale_before="2000-01-01") is False
    assert run_store.claim_flag(db, second, stale_before="9999-01-01") is True
    stored = run_store.get_flag(db, 1)
    assert stored is not None and stored.user_id == "U2"


def test_history_queries_read_by_index_not_by_scanning_every_run(tmp_path: Path) -> None:
    """App Home and the background checks stay fast however many runs are stored."""
    db = open_db(str(tmp_path / "history.db"))
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    since = now_iso(timedelta(hours=24))
    run_store.recent_runs(db, "T1")
    run_store.recent_runs(db, "T1", limit=100, offset=200)
    run_store.runs_started_by(db, "T1", "U0MARIA")
    run_store.active_run_ids(db)
    run_store.runs_missing_details(db)
    run_store.finished_without_grade(db)
    messages.terminal_runs_without_result(db, since=since)
    db.conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().lower().startswith("select")]
    assert len(selects) == 7, selects
    for sql in selects:
        plan = " / ".join(row[3] for row in db.execute("explain query plan " + sql))
        assert "SCAN runs" not in plan or "USING INDEX" in plan, f"{sql}\n{plan}"
        if "started_by = " in sql:
            # Not every run of the workspace, only the viewer's: App Home with a big history.
            assert "started_by=?" in plan, f"{sql}\n{plan}"


def test_reports_held_for_an_unknown_run_are_woken_in_every_shape_once_it_is_known(
    db: Database,
) -> None:
    shapes = {
        "guide": '{"data": {"test_call_run": {"id": 1}}}',
        "run": '{"data": {"run": {"id": 1}}}',
        "flat": '{"data": {"id": 1}}',
        "other": '{"data": {"id": 2}}',
    }
    inbox.store_events(db, [(key, "test-call.completed", body) for key, body in shapes.items()])
    for key in shapes:
        inbox.mark_failed(db, key, "RunNotKnownYet(1)")
    assert inbox.pending_events(db) == []  # all waiting for their next attempt
    add_run(db)
    assert inbox.wake_known_runs(db) == 3
    assert {row["key"] for row in inbox.pending_events(db)} == {"guide", "run", "flat"}
