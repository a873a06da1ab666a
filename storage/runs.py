"""Runs, their grades, transcripts and review flags, merged idempotently."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from storage.db import fetch_row, insert_row, now_iso, update_row
from storage.models import (
    TERMINAL_RUN_STATUSES,
    FlagRecord,
    GradeRecord,
    RunRecord,
    run_status_rank,
)


def save_run(db: Database, run: RunRecord) -> RunRecord:
    stamp = now_iso()
    stored = run.model_copy(update={"created_at": run.created_at or stamp, "updated_at": stamp})
    insert_row(db, "runs", stored.model_dump())
    return stored


def get_run(db: Database, run_id: int) -> RunRecord | None:
    row = fetch_row(db, "select * from runs where run_id = ?", [run_id])
    return RunRecord.from_row(row) if row else None


def known_run_ids(db: Database, run_ids: list[int]) -> set[int]:
    """Which of `run_ids` are runs this bot started."""
    if not run_ids:
        return set()
    marks = ",".join("?" * len(run_ids))
    rows = db.execute(f"select run_id from runs where run_id in ({marks})", run_ids)
    return {row[0] for row in rows.fetchall()}


def find_run_by_call(db: Database, call_id: int) -> RunRecord | None:
    row = fetch_row(db, "select * from runs where call_id = ? limit 1", [call_id])
    return RunRecord.from_row(row) if row else None


def merge_run(db: Database, run_id: int, changes: dict[str, Any]) -> tuple[RunRecord, bool]:
    """Apply what ThunderPhone reported about a run; return it and whether anything changed.

    A status only moves forward (a terminal status never goes back), and a known value is never
    overwritten with nothing, so replays and out-of-order reports are harmless.
    """
    merged = merge_known_run(db, run_id, changes)
    if merged is None:
        raise KeyError(run_id)
    return merged


def merge_known_run(
    db: Database, run_id: int, changes: dict[str, Any]
) -> tuple[RunRecord, bool] | None:
    """`merge_run`, or None when no such run is stored."""
    with db.atomic():
        current = get_run(db, run_id)
        if current is None:
            return None
        update: dict[str, Any] = {}
        for field, value in changes.items():
            if value is None or getattr(current, field) == value:
                continue
            if field == "status":
                if current.status in TERMINAL_RUN_STATUSES:
                    continue
                if run_status_rank(value) < run_status_rank(current.status):
                    continue
            update[field] = value
        if not update:
            return current, False
        update["updated_at"] = now_iso()
        update_row(db, "runs", "run_id", run_id, update)
    # What the update wrote is what the stored run now is.
    return current.model_copy(update=update), True


def active_run_ids(db: Database) -> list[int]:
    """Runs not over yet, oldest first: the poller asks ThunderPhone about each."""
    rows = db.execute(
        "select run_id from runs where status not in ('completed', 'failed') order by created_at"
    )
    return [int(row[0]) for row in rows]


def recent_runs(db: Database, team_id: str, *, limit: int = 10, offset: int = 0) -> list[RunRecord]:
    """A workspace's runs, newest first; `offset` skips that many (the next page)."""
    return _runs(
        db,
        "select * from runs where team_id = ? order by created_at desc, run_id desc"
        " limit ? offset ?",
        [team_id, limit, offset],
    )


def runs_started_by(
    db: Database, team_id: str, user_id: str, *, limit: int = 10
) -> list[RunRecord]:
    """The runs `user_id` started in a workspace, newest first."""
    return _runs(
        db,
        "select * from runs where team_id = ? and started_by = ?"
        " order by created_at desc, run_id desc limit ?",
        [team_id, user_id, limit],
    )


def _runs(db: Database, sql: str, params: list[Any] | None = None) -> list[RunRecord]:
    cursor = db.execute(sql, params or [])
    columns = [column[0] for column in cursor.description]
    return [RunRecord.from_row(dict(zip(columns, row, strict=True))) for row in cursor]


def recent_costs(db: Database, target_type: str, target_id: int, *, limit: int = 8) -> list[int]:
    """Billed cost of the last completed runs on a target, newest first."""
    rows = db.execute(
        "select cost_cents from runs where target_type = ? and target_id = ?"
        " and cost_cents is not null order by completed_at desc limit ?",
        [target_type, target_id, limit],
    ).fetchall()
    return [int(row[0]) for row in rows]


def merge_grade(db: Database, grade: GradeRecord) -> bool:
    """Store a grade unless a later one is already stored; True when it was stored."""
    with db.atomic():
        row = fetch_row(db, "select * from grades where call_id = ?", [grade.call_id])
        if row:
            current = GradeRecord.from_row(row)
            if current == grade:
                return False
            if (current.graded_at or "") > (grade.graded_at or ""):
                return False
        db.table("grades").upsert({**grade.model_dump(), "received_at": now_iso()}, pk="call_id")
    return True


def get_grade(db: Database, call_id: int | None) -> GradeRecord | None:
    if call_id is None:
        return None
    row = fetch_row(db, "select * from grades where call_id = ?", [call_id])
    return GradeRecord.from_row(row) if row else None


def save_transcript(db: Database, call_id: int, entries: list[dict[str, Any]]) -> None:
    db.table("transcripts").upsert(
        {"call_id": call_id, "entries": json.dumps(entries), "fetched_at": now_iso()},
        pk="call_id",
    )


def get_transcript(db: Database, call_id: int | None) -> list[dict[str, Any]] | None:
    if call_id is None:
        return None
    row = fetch_row(db, "select entries from transcripts where call_id = ?", [call_id])
    if not row:
        return None
    entries: list[dict[str, Any]] = json.loads(row["entries"])
    return entries


def claim_flag(db: Database, flag: FlagRecord, *, stale_before: str) -> bool:
    """Record that someone is filing a review flag for a run; False if one exists already.

    A flag still being filed since before `stale_before` was interrupted and is taken over.
    """
    row = {**flag.model_dump(), "created_at": flag.created_at or now_iso()}
    with db.atomic():
        db.execute(
            "delete from flags where run_id = ? and status = 'filing' and created_at < ?",
            [flag.run_id, stale_before],
        )
        cursor = db.execute(
            f"insert or ignore into flags ({', '.join(row)}) values ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    return cursor.rowcount == 1


def update_flag(db: Database, run_id: int, changes: dict[str, Any]) -> FlagRecord:
    db.table("flags").update(run_id, changes)
    flag = get_flag(db, run_id)
    assert flag is not None
    return flag


def drop_interrupted_flags(db: Database, *, started_before: str) -> list[int]:
    """Forget flags whose filing was interrupted (the bot stopped); returns their run ids."""
    rows = db.execute(
        "select run_id from flags where status = 'filing' and created_at < ?", [started_before]
    ).fetchall()
    db.execute("delete from flags where status = 'filing' and created_at < ?", [started_before])
    return [int(row[0]) for row in rows]


def get_flag(db: Database, run_id: int) -> FlagRecord | None:
    row = fetch_row(db, "select * from flags where run_id = ?", [run_id])
    return FlagRecord.from_row(row) if row else None


def delete_flag(db: Database, run_id: int) -> None:
    db.execute("delete from flags where run_id = ?", [run_id])


def finished_without_grade(db: Database, *, within_hours: int = 24) -> list[RunRecord]:
    """Completed runs whose grade has not arrived (call.graded may never come), or only the
    provisional score read off the call."""
    rows = db.query(
        "select runs.* from runs left join grades on grades.call_id = runs.call_id"
        " where runs.status = 'completed' and runs.call_id is not null"
        " and (grades.call_id is null or grades.status = 'provisional')"
        " and runs.updated_at > ?",
        [now_iso(timedelta(hours=within_hours))],
    )
    return [RunRecord.from_row(row) for row in rows]


def runs_missing_details(db: Database, *, within_hours: int = 2) -> list[RunRecord]:
    """Completed runs whose cost or transcript could not be fetched yet."""
    rows = db.query(
        "select runs.* from runs left join transcripts on transcripts.call_id = runs.call_id"
        " where runs.status = 'completed' and runs.call_id is not null"
        " and (runs.cost_cents is null or transcripts.call_id is null)"
        " and runs.updated_at > ?",
        [now_iso(timedelta(hours=within_hours))],
    )
    return [RunRecord.from_row(row) for row in rows]
