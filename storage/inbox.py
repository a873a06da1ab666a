"""The webhook inbox: deliveries are stored first, then applied by a worker."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from storage.db import now_iso

_INSERT = (
    "insert or ignore into webhook_events (key, event_type, body, received_at, attempts,"
    " processed_at) values (?, ?, ?, ?, 0, ?)"
)


def store_events(
    db: Database, deliveries: list[tuple[str, str, str]], *, handled: frozenset[str] = frozenset()
) -> list[bool]:
    """Store (key, event type, body) deliveries in one transaction, committed when this
    returns; for each, False when it was stored before (a duplicate). Those whose key is in
    `handled` need nothing more: they are stored as applied already."""
    received = now_iso()
    with db.conn:  # one commit for the group
        return [
            db.conn.execute(
                _INSERT, [key, event_type, body, received, received if key in handled else None]
            ).rowcount
            == 1
            for key, event_type, body in deliveries
        ]


log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12


def pending_events(
    db: Database, *, limit: int = -1, besides: Collection[str] = ()
) -> list[dict[str, Any]]:
    """Stored deliveries not yet applied whose next attempt is due, oldest first (at most
    `limit`; -1: all), leaving out the keys in `besides`."""
    cursor = db.execute(
        "select * from webhook_events where processed_at is null and attempts < ?"
        " and coalesce(next_attempt_at, '') <= ?"
        " and key not in (select value from json_each(?)) order by received_at limit ?",
        [MAX_ATTEMPTS, now_iso(), json.dumps(list(besides)), limit],
    )
    columns = [column[0] for column in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


def mark_processed(db: Database, key: str) -> None:
    """Mark one delivery applied: in the caller's transaction if one is open, else committed."""
    db.execute(
        "update webhook_events set processed_at = ?, error = null where key = ?", [now_iso(), key]
    )


def wake_known_runs(db: Database) -> int:
    """Deliveries held back because their run was not known yet (`RunNotKnownYet`) whose run
    is known now: due at once rather than after their growing wait. Returns how many."""
    with db.conn:
        cursor = db.conn.execute(
            "update webhook_events set next_attempt_at = null"
            " where processed_at is null and next_attempt_at is not null"
            " and error like 'RunNotKnownYet(%'"
            # The run as ThunderPhone's shapes place it: data itself, data.test_call_run,
            # or data.run (bot.thunderphone.models reads the same three).
            " and coalesce(json_extract(body, '$.data.id'),"
            " json_extract(body, '$.data.test_call_run.id'), json_extract(body, '$.data.run.id'))"
            " in (select run_id from runs)"
        )
    return int(cursor.rowcount)


def mark_failed(db: Database, key: str, error: str) -> None:
    """Count a failed attempt and wait longer before each next one (5 s doubling, up to 10 min)."""
    row = db.table("webhook_events").get(key)
    attempts = int(row["attempts"] or 0) + 1
    delay = min(5 * 2 ** (attempts - 1), 600)
    retry_at = now_iso(-timedelta(seconds=delay))
    db.table("webhook_events").update(
        key, {"attempts": attempts, "error": error[:2000], "next_attempt_at": retry_at}
    )
    if attempts >= MAX_ATTEMPTS:
        log.error("gave up applying webhook %s after %s attempts: %s", key, attempts, error)
