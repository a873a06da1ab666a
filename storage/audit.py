"""The audit trail: events only ever added, listed by subject, by channel or by time.

An event is recorded by the caller in the same transaction as the change it describes, where
there is one, so the change and its record stand or fall together.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlite_utils import Database

from storage.db import now_iso
from storage.models import AuditEvent

_NEWEST_FIRST = "at desc, id desc"


def record(db: Database, event: AuditEvent) -> AuditEvent:
    """Add `event` (stamped now unless it says when); returns it as stored."""
    row = event.model_dump(exclude={"id"})
    row["at"] = event.at or now_iso()
    inserted = db.table("audit_events").insert(row)
    return event.model_copy(update={"id": inserted.last_pk, "at": row["at"]})


def for_subjects(
    db: Database, subjects: Iterable[tuple[str, str]], *, limit: int
) -> list[AuditEvent]:
    """The events about any of `subjects` (kind, id), newest first."""
    pairs = list(dict.fromkeys(subjects))
    if not pairs:
        return []
    where = " or ".join("(subject_kind = ? and subject_id = ?)" for _ in pairs)
    params = [value for pair in pairs for value in pair]
    rows = db.table("audit_events").rows_where(where, params, order_by=_NEWEST_FIRST, limit=limit)
    return [AuditEvent.from_row(row) for row in rows]


def in_channel(db: Database, channel_id: str, *, limit: int) -> list[AuditEvent]:
    """The events of one channel, newest first."""
    rows = db.table("audit_events").rows_where(
        "channel_id = ?", [channel_id], order_by=_NEWEST_FIRST, limit=limit
    )
    return [AuditEvent.from_row(row) for row in rows]


def since(db: Database, start: str | None = None, *, limit: int | None = None) -> list[AuditEvent]:
    """The events at or after `start` (an ISO time or date; None: all), oldest first."""
    rows = db.table("audit_events").rows_where(
        "at >= ?", [start or ""], order_by="at, id", limit=limit
    )
    return [AuditEvent.from_row(row) for row in rows]
