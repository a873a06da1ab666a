"""The webhook inbox: deliveries are stored first, then applied by a worker."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from storage.db import now_iso


def store_event(db: Database, key: str, event_type: str, body: str) -> bool:
    """Store a delivery; False when the same delivery was stored before (a duplicate)."""
    cursor = db.execute(
        "insert or ignore into webhook_events (key, event_type, body, received_at, attempts)"
        " values (?, ?, ?, ?, 0)",
        [key, event_type, body, now_iso()],
    )
    return cursor.rowcount == 1


def pending_events(db: Database, *, max_attempts: int = 5) -> list[dict[str, Any]]:
    return list(
        db.table("webhook_events").rows_where(
            "processed_at is null and attempts < ?", [max_attempts], order_by="received_at"
        )
    )


def mark_processed(db: Database, key: str) -> None:
    db.table("webhook_events").update(key, {"processed_at": now_iso(), "error": None})


def mark_failed(db: Database, key: str, error: str) -> None:
    db.execute(
        "update webhook_events set attempts = attempts + 1, error = ? where key = ?",
        [error[:2000], key],
    )
