"""The SQLite database: opening it and its schema migrations.

Storage functions run directly on the event loop thread: every query is small and local, and a
sqlite3 connection is tied to the thread that opened it. Nothing here knows about Slack or HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("thunderbot")


def now_iso(ago: timedelta = timedelta(0)) -> str:
    """The time now (or `ago` before now) as stored: ISO 8601 in UTC, so strings sort in time."""
    return (datetime.now(UTC) - ago).isoformat(timespec="milliseconds")


def open_db(path: str) -> Database:
    """Open (creating if needed) and migrate the database at `path` (":memory:" for tests)."""
    db = Database(memory=True) if path == ":memory:" else Database(path)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db


@migrations()
def m001_initial(db: Database) -> None:
    db.table("aliases").create(
        {
            "team_id": str,
            "name": str,
            "target_type": str,
            "target_id": int,
            "created_by": str,
            "created_at": str,
        },
        pk=("team_id", "name"),
    )
    # A launch is the intent to start a paid run, recorded before ThunderPhone is asked, so a
    # second click, a retry or a restart finds it instead of launching again.
    db.table("launches").create(
        {
            "id": str,
            "team_id": str,
            "channel_id": str,
            "user_id": str,
            "target_type": str,
            "target_id": int,
            "target_label": str,
            "direction": str,
            "mode": str,
            "caller_number": str,
            "scenario_prompt": str,
            "status": str,
            "run_id": int,
            "card_ts": str,
            "error": str,
            "decided_by": str,
            "decided_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"team_id", "channel_id", "user_id", "target_type", "target_id", "status"},
    )
    db.table("runs").create(
        {
            "run_id": int,
            "launch_id": str,
            "team_id": str,
            "channel_id": str,
            "card_ts": str,
            "card_digest": str,
            "result_ts": str,
            "result_digest": str,
            "started_by": str,
            "target_type": str,
            "target_id": int,
            "target_name": str,
            "direction": str,
            "mode": str,
            "caller_number": str,
            "scenario_prompt": str,
            "status": str,
            "call_id": int,
            "error_message": str,
            "duration_seconds": int,
            "cost_cents": int,
            "end_reason": str,
            "created_at": str,
            "started_at": str,
            "completed_at": str,
            "updated_at": str,
        },
        pk="run_id",
        foreign_keys=[("launch_id", "launches", "id")],
    )
    db.table("runs").create_index(["call_id"])
    db.table("runs").create_index(["status"])
    db.table("runs").create_index(["target_type", "target_id"])
    # Grades are keyed by call: call.graded can arrive before the run knows its call.
    db.table("grades").create(
        {
            "call_id": int,
            "score": float,
            "status": str,
            "call_outcome": str,
            "summary": str,
            "outcome_reasoning": str,
            "grader_model": str,
            "graded_at": str,
            "received_at": str,
        },
        pk="call_id",
    )
    db.table("transcripts").create(
        {"call_id": int, "entries": str, "fetched_at": str}, pk="call_id"
    )
    db.table("flags").create(
        {
            "run_id": int,
            "call_id": int,
            "user_id": str,
            "severity": str,
            "title": str,
            "description": str,
            "turn": int,
            "status": str,
            "issue_id": int,
            "trace_id": str,
            "permalink": str,
            "error": str,
            "created_at": str,
        },
        pk="run_id",
    )
    # The webhook inbox: every accepted delivery is stored before ThunderPhone gets its 2xx.
    db.table("webhook_events").create(
        {
            "key": str,
            "event_type": str,
            "body": str,
            "received_at": str,
            "processed_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "error": str,
        },
        pk="key",
    )
    db.table("webhook_events").create_index(["processed_at"])
