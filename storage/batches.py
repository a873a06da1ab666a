"""Batches: one request of several runs, its parts (one ThunderPhone batch of at most 20 runs
each) and its items (one planned run each, in the order given), claimed like launches."""

from __future__ import annotations

import uuid
from typing import Literal

from sqlite_utils import Database

from storage.db import now_iso
from storage.models import (
    BatchItem,
    BatchKind,
    BatchPart,
    BatchPartStatus,
    BatchRecord,
    BatchStatus,
)

PART_SIZE = 20  # ThunderPhone's limit on runs per batch
# What a suite run is compared with (`baseline_of`).
BaselineChoice = Literal["auto", "blessed", "previous", "none"]


def new_batch_id() -> str:
    return uuid.uuid4().hex


def save_batch(db: Database, batch: BatchRecord, items: list[BatchItem]) -> BatchRecord:
    """Store a proposed batch with its planned runs, split into parts, in one go."""
    stored = batch.model_copy(update={"created_at": batch.created_at or now_iso()})
    parts = sorted({item.position // PART_SIZE for item in items})
    with db.atomic():
        db.table("batches").insert(stored.model_dump(), pk="id")
        db.table("batch_items").insert_all(
            [
                item.model_copy(
                    update={"batch_id": stored.id, "part": item.position // PART_SIZE}
                ).model_dump()
                for item in items
            ],
            pk=("batch_id", "position"),
        )
        db.table("batch_parts").insert_all(
            [
                BatchPart(batch_id=stored.id, part=part, updated_at=stored.created_at).model_dump()
                for part in parts
            ],
            pk=("batch_id", "part"),
        )
    return stored


def get_batch(db: Database, batch_id: str) -> BatchRecord | None:
    rows = list(db.table("batches").rows_where("id = ?", [batch_id]))
    return BatchRecord.from_row(rows[0]) if rows else None


def get_items(db: Database, batch_id: str) -> list[BatchItem]:
    rows = db.table("batch_items").rows_where("batch_id = ?", [batch_id], order_by="position")
    return [BatchItem.from_row(row) for row in rows]


def get_parts(db: Database, batch_id: str) -> list[BatchPart]:
    rows = db.table("batch_parts").rows_where("batch_id = ?", [batch_id], order_by="part")
    return [BatchPart.from_row(row) for row in rows]


def claim_batch(
    db: Database, batch_id: str, *, to: BatchStatus, by: str, created_after: str = ""
) -> bool:
    """Decide a proposed batch; True only for the one caller that did it."""
    cursor = db.execute(
        "update batches set status = ?, decided_by = ?, decided_at = ?"
        " where id = ? and status = 'proposed' and created_at > ?",
        [to, by, now_iso(), batch_id, created_after],
    )
    return cursor.rowcount == 1


def set_batch_status(
    db: Database, batch_id: str, status: BatchStatus, *, error: str | None = None
) -> None:
    """Set a batch's status, and its error when one is given (an earlier one is kept)."""
    changes: dict[str, object] = {"status": status}
    if error is not None:
        changes["error"] = error
    db.table("batches").update(batch_id, changes)


def stalled_batches(db: Database, *, decided_before: str) -> list[BatchRecord]:
    """Batches still `launching` long after the click: the bot stopped while sending them."""
    rows = db.table("batches").rows_where(
        "status = 'launching' and decided_at < ?", [decided_before], order_by="decided_at"
    )
    return [BatchRecord.from_row(row) for row in rows]


def claim_part(db: Database, batch_id: str, part: int) -> bool:
    """Recorded before the paid request: True only for the one caller that sends it."""
    cursor = db.execute(
        "update batch_parts set status = 'launching', updated_at = ?"
        " where batch_id = ? and part = ? and status = 'pending'",
        [now_iso(), batch_id, part],
    )
    return cursor.rowcount == 1


def finish_part(
    db: Database,
    batch_id: str,
    part: int,
    *,
    status: BatchPartStatus,
    tp_batch_id: int | None = None,
    error: str | None = None,
) -> bool:
    """Record a part's outcome while it is being sent or looked for; the first one stands."""
    cursor = db.execute(
        "update batch_parts set status = ?, tp_batch_id = ?, error = ?, updated_at = ?"
        " where batch_id = ? and part = ? and status in ('launching', 'unknown')",
        [status, tp_batch_id, error, now_iso(), batch_id, part],
    )
    return cursor.rowcount == 1


def skip_pending_parts(db: Database, batch_id: str, reason: str) -> int:
    cursor = db.execute(
        "update batch_parts set status = 'skipped', error = ?, updated_at = ?"
        " where batch_id = ? and status = 'pending'",
        [reason, now_iso(), batch_id],
    )
    return cursor.rowcount


def assign_runs(db: Database, batch_id: str, part: int, run_ids: list[int]) -> None:
    """ThunderPhone lists a batch's runs in the order of its prompts: match them to items."""
    items = [item for item in get_items(db, batch_id) if item.part == part]
    for item, run_id in zip(items, run_ids, strict=False):
        db.execute(
            "update batch_items set run_id = ? where batch_id = ? and position = ?",
            [run_id, batch_id, item.position],
        )


def unsettled_parts(db: Database, *, updated_before: str) -> list[BatchPart]:
    """Parts whose answer was unclear, or whose sending was interrupted by a stop."""
    rows = db.table("batch_parts").rows_where(
        "status = 'unknown' or (status = 'launching' and updated_at < ?)",
        [updated_before],
        order_by="updated_at",
    )
    return [BatchPart.from_row(row) for row in rows]


def any_unsettled_parts(db: Database) -> bool:
    """Parts being sent or looked for, or batches still being started."""
    row = db.execute(
        "select 1 from batch_parts where status in ('launching', 'unknown')"
        " union all select 1 from batches where status = 'launching' limit 1"
    ).fetchone()
    return row is not None


def mark_finished(db: Database, batch_id: str) -> bool:
    """The first caller to see every run of a batch done; True only for that one."""
    cursor = db.execute(
        "update batches set finished_at = ? where id = ? and finished_at is null",
        [now_iso(), batch_id],
    )
    return cursor.rowcount == 1


def bless(db: Database, batch: BatchRecord, user_id: str) -> bool:
    """Make a finished suite run the baseline of its suite on its target; False if it already
    is, or the batch is no suite run."""
    if batch.suite is None:
        return False
    stamp = now_iso()
    with db.atomic():
        current = db.execute(
            "select batch_id from suite_baselines where suite = ? and target_type = ?"
            " and target_id = ?",
            [batch.suite, batch.target_type, batch.target_id],
        ).fetchone()
        if current is not None and current[0] == batch.id:
            return False  # already the baseline (an earlier one may be blessed again)
        db.execute(
            "update batches set blessed_by = ?, blessed_at = ? where id = ?",
            [user_id, stamp, batch.id],
        )
        db.table("suite_baselines").upsert(
            {
                "suite": batch.suite,
                "target_type": batch.target_type,
                "target_id": batch.target_id,
                "batch_id": batch.id,
                "blessed_by": user_id,
                "blessed_at": stamp,
            },
            pk=("suite", "target_type", "target_id"),
        )
    return True


def baseline_of(
    db: Database, batch: BatchRecord, choice: BaselineChoice = "auto"
) -> BatchRecord | None:
    """What a suite run is compared with: the blessed run of its suite on its target, or else
    the previous finished run ("auto"); only the blessed run ("blessed"), only the previous
    finished run ("previous"), or nothing ("none")."""
    if batch.suite is None or choice == "none":
        return None
    if choice != "previous":
        # Only a run blessed before this one started: blessing a later run must not change
        # what an earlier run was compared with.
        blessed = db.execute(
            "select suite_baselines.batch_id from suite_baselines"
            " join batches on batches.id = suite_baselines.batch_id"
            " where suite_baselines.suite = ? and suite_baselines.target_type = ?"
            " and suite_baselines.target_id = ? and batches.id != ? and batches.created_at < ?",
            [batch.suite, batch.target_type, batch.target_id, batch.id, batch.created_at],
        ).fetchone()
        if blessed is not None:
            return get_batch(db, str(blessed[0]))
        if choice == "blessed":
            return None
    rows = list(
        db.table("batches").rows_where(
            "suite = ? and target_type = ? and target_id = ? and id != ?"
            " and finished_at is not null and created_at < ?",
            [batch.suite, batch.target_type, batch.target_id, batch.id, batch.created_at],
            order_by="created_at desc",
            limit=1,
        )
    )
    return BatchRecord.from_row(rows[0]) if rows else None


def flaky_cases(db: Database, batch: BatchRecord) -> set[str]:
    """Cases of a suite run's suite that were flaky in an earlier run on the same target."""
    rows = db.execute(
        "select distinct case_name from batch_items"
        " join batches on batches.id = batch_items.batch_id"
        " where batches.suite = ? and batches.target_type = ? and batches.target_id = ?"
        " and batches.created_at < ? and batch_items.verdict = 'flaky'",
        [batch.suite, batch.target_type, batch.target_id, batch.created_at],
    ).fetchall()
    return {str(row[0]) for row in rows}


def record_verdicts(db: Database, batch_id: str, verdicts: dict[str, str]) -> None:
    """Remember each case's verdict, so a later run knows which cases have been flaky."""
    for case_name, verdict in verdicts.items():
        db.execute(
            "update batch_items set verdict = ? where batch_id = ? and case_name = ?",
            [verdict, batch_id, case_name],
        )


def set_kind(db: Database, batch_id: str, kind: BatchKind) -> None:
    """Say what a proposed batch is (a smoke test, say), so its card can tell."""
    db.execute("update batches set kind = ? where id = ? and status = 'proposed'", [kind, batch_id])


def finished_suite_runs(
    db: Database, suite: str, *, target_type: str | None = None, target_id: int | None = None
) -> list[BatchRecord]:
    """The finished runs of a suite (smoke tests of it included), oldest first; on one target
    when it is given."""
    where = "suite = ? and finished_at is not null"
    params: list[object] = [suite]
    if target_type is not None and target_id is not None:
        where += " and target_type = ? and target_id = ?"
        params += [target_type, target_id]
    rows = db.table("batches").rows_where(where, params, order_by="created_at, id")
    return [BatchRecord.from_row(row) for row in rows]


def ids_starting(db: Database, prefix: str, *, limit: int = 2) -> list[str]:
    """The ids of batches starting with `prefix` (as a card shows them: the first 8), up to
    `limit` of them: more than one means the prefix is too short to tell them apart."""
    rows = db.execute(
        "select id from batches where substr(id, 1, ?) = ? order by created_at limit ?",
        [len(prefix), prefix, limit],
    ).fetchall()
    return [str(row[0]) for row in rows]
