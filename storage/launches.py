"""Launch intents: recorded before any paid request, claimed atomically by one click."""

from __future__ import annotations

import os
import time

from sqlite_utils import Database

from storage.db import fetch_row, insert_row, now_iso
from storage.models import Launch, LaunchStatus


def new_launch_id() -> str:
    """32 hex digits, the clock's nanoseconds then 64 random bits: unguessable, and in the
    order they were made, so a proposal is added at the end of the id index instead of
    anywhere in it (every `/testcall run` stores one before it is answered)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def save_launch(db: Database, launch: Launch) -> Launch:
    if not launch.created_at:
        launch = launch.model_copy(update={"created_at": now_iso()})
    insert_row(db, "launches", launch.model_dump())
    return launch


def get_launch(db: Database, launch_id: str) -> Launch | None:
    row = fetch_row(db, "select * from launches where id = ?", [launch_id])
    return Launch.from_row(row) if row else None


def claim_launch(
    db: Database, launch_id: str, *, to: LaunchStatus, by: str, created_after: str = ""
) -> bool:
    """Decide a proposed launch; True only for the one caller that did it.

    A launch created at or before `created_after` (an ISO time) is not claimed.
    """
    cursor = db.execute(
        "update launches set status = ?, decided_by = ?, decided_at = ?"
        " where id = ? and status = 'proposed' and created_at > ?",
        [to, by, now_iso(), launch_id, created_after],
    )
    return cursor.rowcount == 1


def mark_sent(db: Database, launch_id: str) -> bool:
    """Recorded just before the paid request: True only while the launch is still being
    started and not yet sent. A launch called off meanwhile is not sent.

    Flushed to disk before it returns (other commits wait for the next checkpoint), so not
    even a power loss can make a launch that may have gone out look as if it never did."""
    previous = db.execute("PRAGMA synchronous").fetchone()[0]
    db.execute("PRAGMA synchronous=FULL")
    try:
        cursor = db.execute(
            "update launches set sent_at = ? where id = ? and status = 'launching'"
            " and sent_at is null",
            [now_iso(), launch_id],
        )
    finally:
        db.execute(f"PRAGMA synchronous={int(previous)}")
    return cursor.rowcount == 1


def unsettled_launches(db: Database, *, decided_before: str) -> list[Launch]:
    """Launches whose outcome is not known: ThunderPhone gave no clear answer, or the bot
    stopped between asking and recording the answer."""
    return _launches_where(
        db,
        "status = 'unknown' or (status = 'launching' and sent_at is not null and decided_at < ?)",
        decided_before,
    )


def unsent_launches(db: Database, *, decided_before: str) -> list[Launch]:
    """Launches the bot stopped starting between the click and the paid request: never sent,
    so ThunderPhone has nothing to find."""
    return _launches_where(
        db, "status = 'launching' and sent_at is null and decided_at < ?", decided_before
    )


def _launches_where(db: Database, where: str, decided_before: str) -> list[Launch]:
    rows = db.table("launches").rows_where(where, [decided_before], order_by="decided_at")
    return [Launch.from_row(row) for row in rows]


def any_unsettled(db: Database) -> bool:
    row = db.execute(
        "select 1 from launches where status in ('launching', 'unknown') limit 1"
    ).fetchone()
    return row is not None


def finish_launch(
    db: Database,
    launch_id: str,
    *,
    status: LaunchStatus,
    run_id: int | None = None,
    error: str | None = None,
    unsent: bool = False,
) -> bool:
    """Record the outcome of a launch still being started or looked for; False if it was
    already settled (the first outcome recorded stands), or, with `unsent`, sent meanwhile."""
    cursor = db.execute(
        "update launches set status = ?, run_id = ?, error = ?"
        " where id = ? and status in ('launching', 'unknown')"
        + (" and sent_at is null" if unsent else ""),
        [status, run_id, error, launch_id],
    )
    return cursor.rowcount == 1
