"""Spend caps, the estimates reserved at consent, warnings given, and approvals asked for.

A cap is per workspace (`channel_id` "") or per channel, per `day` or `month`. What counts
against it is what runs started in the period were billed, plus the estimates reserved at consent
for runs not billed yet; a reservation stops counting once its run is billed, or when its launch
or batch part turns out never to have started. Nothing here knows about Slack.
"""

from __future__ import annotations

from typing import Literal

from sqlite_utils import Database

from storage.db import fetch_row, now_iso
from storage.models import Record

Period = Literal["day", "month"]
Over = Literal["wait", "refuse"]
HoldOwner = Literal["launch", "batch"]
ApprovalSubject = Literal["launch", "batch", "compare"]
# waiting: an admin has not decided yet · approved / declined: an admin did · void: the thing
# to approve was decided another way first (started, cancelled) or asked too long ago.
ApprovalStatus = Literal["waiting", "approved", "declined", "void"]


class Cap(Record):
    team_id: str
    channel_id: str = ""  # "" for the workspace
    period: Period
    cap_cents: int
    over: Over = "wait"
    set_by: str = ""
    set_at: str = ""


class Approval(Record):
    id: int
    subject_kind: ApprovalSubject
    subject_id: str
    team_id: str = ""
    channel_id: str = ""
    requested_by: str
    estimate_cents: int = 0
    reason: str = ""
    status: ApprovalStatus = "waiting"
    decided_by: str | None = None
    decided_at: str | None = None
    created_at: str = ""


# ---------------------------------------------------------------------------------------------
# Caps


def set_cap(db: Database, cap: Cap) -> Cap | None:
    """Store a cap, replacing the one for the same place and period; returns the replaced."""
    previous = get_cap(db, cap.team_id, cap.channel_id, cap.period)
    stored = cap.model_copy(update={"set_at": cap.set_at or now_iso()})
    db.table("budget_caps").upsert(stored.model_dump(), pk=("team_id", "channel_id", "period"))
    return previous


def get_cap(db: Database, team_id: str, channel_id: str, period: Period) -> Cap | None:
    row = fetch_row(
        db,
        "select * from budget_caps where team_id = ? and channel_id = ? and period = ?",
        [team_id, channel_id, period],
    )
    return Cap.from_row(row) if row else None


def clear_cap(db: Database, team_id: str, channel_id: str, period: Period) -> Cap | None:
    """Remove a cap; returns it, or None when there was none."""
    previous = get_cap(db, team_id, channel_id, period)
    db.execute(
        "delete from budget_caps where team_id = ? and channel_id = ? and period = ?",
        [team_id, channel_id, period],
    )
    return previous


def caps_for(db: Database, team_id: str, channel_id: str) -> list[Cap]:
    """The caps a launch in `channel_id` answers to: the workspace's, then the channel's."""
    rows = db.execute(
        "select * from budget_caps where team_id = ? and channel_id in ('', ?)"
        " order by channel_id != '', period",
        [team_id, channel_id],
    )
    names = [column[0] for column in rows.description]
    return [Cap.from_row(dict(zip(names, row, strict=True))) for row in rows.fetchall()]


# ---------------------------------------------------------------------------------------------
# Reservations and spend


def add_holds(
    db: Database,
    owner: tuple[HoldOwner, str],
    *,
    team_id: str,
    channel_id: str,
    at: str,
    estimates: list[int],
) -> None:
    """Reserve one estimate per planned run (by position); a run already reserved keeps its."""
    kind, owner_id = owner
    db.conn.executemany(
        "insert or ignore into budget_holds"
        " (owner_kind, owner_id, position, team_id, channel_id, at, estimate_cents)"
        " values (?, ?, ?, ?, ?, ?, ?)",
        [
            (kind, owner_id, position, team_id, channel_id, at, cents)
            for position, cents in enumerate(estimates)
        ],
    )


# Billed: the runs started in the period that have a cost.
_BILLED = (
    "select coalesce(sum(cost_cents), 0) from runs"
    " where team_id = ? and created_at >= ? and cost_cents is not null"
)
# In flight: reservations whose run has no cost yet, unless the run is known never to cost
# (it failed before its call existed) or was never started (its launch failed or its part was
# refused or not sent).
_IN_FLIGHT = """
select coalesce(sum(h.estimate_cents), 0) from budget_holds h
left join launches l on h.owner_kind = 'launch' and l.id = h.owner_id
left join batch_items i on h.owner_kind = 'batch' and i.batch_id = h.owner_id
    and i.position = h.position
left join batch_parts p on h.owner_kind = 'batch' and p.batch_id = i.batch_id and p.part = i.part
left join runs r on r.run_id = coalesce(l.run_id, i.run_id)
where h.team_id = ? and h.at >= ?
  and coalesce(l.status, '') not in ('proposed', 'failed', 'cancelled', 'expired')
  and coalesce(p.status, '') not in ('refused', 'skipped')
  and r.cost_cents is null
  and not (coalesce(r.status, '') = 'failed' and r.call_id is null)
"""


def spend(db: Database, team_id: str, since: str, channel_id: str | None = None) -> tuple[int, int]:
    """(billed, reserved for runs in flight) in cents, since `since` (an ISO time), in the
    workspace or, given `channel_id`, in that channel."""
    billed_sql, held_sql = _BILLED, _IN_FLIGHT
    billed_args: list[str] = [team_id, since]
    held_args: list[str] = [team_id, since]
    if channel_id is not None:
        billed_sql += " and channel_id = ?"
        held_sql += " and h.channel_id = ?"
        billed_args.append(channel_id)
        held_args.append(channel_id)
    billed = int(db.execute(billed_sql, billed_args).fetchone()[0])
    held = int(db.execute(held_sql, held_args).fetchone()[0])
    return billed, held


def mark_warned(
    db: Database, cap: Cap, period_start: str, level: int, *, at: str | None = None
) -> bool:
    """Record that `level`% of a cap was announced for the period starting `period_start`;
    True only the first time."""
    cursor = db.execute(
        "insert or ignore into budget_warnings"
        " (team_id, channel_id, period, period_start, level, at) values (?, ?, ?, ?, ?, ?)",
        [cap.team_id, cap.channel_id, cap.period, period_start, level, at or now_iso()],
    )
    return cursor.rowcount == 1


# ---------------------------------------------------------------------------------------------
# Approvals


def ask_approval(
    db: Database,
    subject: tuple[ApprovalSubject, str],
    *,
    team_id: str,
    channel_id: str,
    requested_by: str,
    estimate_cents: int,
    reason: str,
) -> tuple[Approval, bool]:
    """The approval asked for `subject`, and whether this call asked it (a second click finds
    the first one's)."""
    kind, subject_id = subject
    cursor = db.execute(
        "insert or ignore into budget_approvals (subject_kind, subject_id, team_id, channel_id,"
        " requested_by, estimate_cents, reason, status, created_at)"
        " values (?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
        [kind, subject_id, team_id, channel_id, requested_by, estimate_cents, reason, now_iso()],
    )
    row = fetch_row(
        db,
        "select * from budget_approvals where subject_kind = ? and subject_id = ?",
        [kind, subject_id],
    )
    assert row is not None
    return Approval.from_row(row), cursor.rowcount == 1


def get_approval(db: Database, approval_id: int) -> Approval | None:
    row = fetch_row(db, "select * from budget_approvals where id = ?", [approval_id])
    return Approval.from_row(row) if row else None


def approval_for(db: Database, subject: tuple[ApprovalSubject, str]) -> Approval | None:
    """The approval asked for a launch (batch, compare), if one was."""
    row = fetch_row(
        db,
        "select * from budget_approvals where subject_kind = ? and subject_id = ?",
        list(subject),
    )
    return Approval.from_row(row) if row else None


def decide_approval(db: Database, approval_id: int, to: ApprovalStatus, by: str) -> bool:
    """Decide a waiting approval; True only for the one caller that did it."""
    cursor = db.execute(
        "update budget_approvals set status = ?, decided_by = ?, decided_at = ?"
        " where id = ? and status = 'waiting'",
        [to, by, now_iso(), approval_id],
    )
    return cursor.rowcount == 1
