"""Compares: one consent for the same scenarios against several targets, claimed like a batch;
each target is a batch of its own (`batches.compare_id`), in the order the targets were named."""

from __future__ import annotations

import uuid

from sqlite_utils import Database

from storage.db import now_iso
from storage.models import BatchRecord, CompareRecord, CompareStatus


def new_compare_id() -> str:
    return uuid.uuid4().hex


def save_compare(db: Database, compare: CompareRecord) -> CompareRecord:
    stored = compare.model_copy(update={"created_at": compare.created_at or now_iso()})
    db.table("compares").insert(stored.model_dump(), pk="id")
    return stored


def get_compare(db: Database, compare_id: str) -> CompareRecord | None:
    rows = list(db.table("compares").rows_where("id = ?", [compare_id]))
    return CompareRecord.from_row(rows[0]) if rows else None


def attach_batch(db: Database, compare_id: str, batch_id: str) -> None:
    """Make a proposed batch one target of the compare."""
    db.execute("update batches set compare_id = ? where id = ?", [compare_id, batch_id])


def batches_of(db: Database, compare_id: str) -> list[BatchRecord]:
    """The compare's batches, one per target, in the order the targets were named."""
    rows = db.table("batches").rows_where("compare_id = ?", [compare_id], order_by="rowid")
    return [BatchRecord.from_row(row) for row in rows]


def claim_compare(
    db: Database, compare_id: str, *, to: CompareStatus, by: str, created_after: str = ""
) -> bool:
    """Decide a proposed compare; True only for the one caller that did it."""
    cursor = db.execute(
        "update compares set status = ?, decided_by = ?, decided_at = ?"
        " where id = ? and status = 'proposed' and created_at > ?",
        [to, by, now_iso(), compare_id, created_after],
    )
    return cursor.rowcount == 1


def set_compare_status(
    db: Database, compare_id: str, status: CompareStatus, *, error: str | None = None
) -> None:
    """Set a compare's status, and its error when one is given (an earlier one is kept)."""
    changes: dict[str, object] = {"status": status}
    if error is not None:
        changes["error"] = error
    db.table("compares").update(compare_id, changes)


def settle_launching(db: Database, compare_id: str, status: CompareStatus) -> bool:
    """Move a compare still `launching` to `status`; True only for the one caller that did."""
    cursor = db.execute(
        "update compares set status = ? where id = ? and status = 'launching'",
        [status, compare_id],
    )
    return cursor.rowcount == 1


def mark_finished(db: Database, compare_id: str) -> bool:
    """The first caller to see every run of every target done; True only for that one, which
    draws the chart."""
    cursor = db.execute(
        "update compares set finished_at = ? where id = ? and finished_at is null",
        [now_iso(), compare_id],
    )
    return cursor.rowcount == 1


def record_chart(db: Database, compare_id: str, *, error: str | None) -> None:
    """The chart was shared (error None) or could not be: either way it is not tried again."""
    db.table("compares").update(compare_id, {"chart_at": now_iso(), "chart_error": error})


def set_tier(db: Database, compare_id: str, batch_id: str, product: str) -> None:
    db.table("compare_tiers").upsert(
        {
            "compare_id": compare_id,
            "batch_id": batch_id,
            "product": product,
            "fetched_at": now_iso(),
        },
        pk=("compare_id", "batch_id"),
    )


def tiers_of(db: Database, compare_id: str) -> dict[str, str]:
    """Each target's product tier (by batch id), as read off one of its calls."""
    rows = db.table("compare_tiers").rows_where("compare_id = ?", [compare_id])
    return {str(row["batch_id"]): str(row["product"] or "") for row in rows}


def ids_starting(db: Database, prefix: str, *, limit: int = 2) -> list[str]:
    """The ids of compares starting with `prefix` (as a card shows them), up to `limit`."""
    rows = db.execute(
        "select id from compares where substr(id, 1, ?) = ? order by created_at limit ?",
        [len(prefix), prefix, limit],
    ).fetchall()
    return [str(row[0]) for row in rows]
