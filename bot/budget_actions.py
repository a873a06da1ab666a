"""What people do about spend caps: `/testcall budget` (anyone looks, admins set and clear),
and an admin's Approve or Decline on a launch held over a cap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlite_utils import Database

from bot import audit, batches, compare, launch, permissions
from bot.blocks import budgets as blocks
from bot.blocks.admin import refused
from bot.blocks.batches import outcome as batch_outcome
from bot.blocks.compare import outcome as compare_outcome
from bot.blocks.replies import launch_outcome
from bot.budgets import (
    Standing,
    admins_of,
    as_stored,
    audit_detail,
    period_start,
    standings,
)
from bot.commands import BudgetClear, BudgetSet, BudgetShow
from bot.interactive import tell
from bot.privacy import place
from bot.services import Services
from storage import batches as batch_store
from storage import budgets as store
from storage import compares as compare_store
from storage import launches, messages
from storage.budgets import Approval, ApprovalSubject, Cap, Period
from storage.db import now_iso
from storage.models import AuditSubject, BatchRecord, CompareRecord, Launch

# An approval is for spending now: one found a day later is not acted on.
APPROVAL_LIFETIME = timedelta(days=1)
PERIODS: tuple[Period, ...] = ("day", "month")


def answer(
    services: Services,
    parsed: BudgetShow | BudgetSet | BudgetClear,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
) -> dict[str, Any]:
    """The ephemeral answer to `/testcall budget …`."""
    if isinstance(parsed, BudgetShow):
        return show(services.db, team_id, channel_id, admins_of(services))
    admins = admins_of(services)
    if user_id not in admins:
        return refused(
            f"Only an admin sets spend caps. Admins: {_admins_text(admins)}. Anyone can see "
            "where spend stands with `/testcall budget`."
        )
    scope = channel_id if parsed.channel == "here" else (parsed.channel or "")
    where = audit.Where(user_id, team_id, channel_id)
    subject: tuple[AuditSubject, str] = ("budget", f"{scope or 'workspace'} {parsed.period}")
    db = services.db
    if isinstance(parsed, BudgetSet):
        cap = Cap(
            team_id=team_id,
            channel_id=scope,
            period=parsed.period,
            cap_cents=parsed.cents,
            over=parsed.over,
            set_by=user_id,
        )
        with db.atomic():
            previous = store.set_cap(db, cap)
            was = f"was {previous.cap_cents / 100:.2f}" if previous else "new"
            detail = f"${cap.cap_cents / 100:,.2f}, then {cap.over} ({was})"
            audit.record(db, "budget_set", subject, where, detail=detail)
        return blocks.cap_saved(cap, previous)
    with db.atomic():
        cleared = store.clear_cap(db, team_id, scope, parsed.period)
        if cleared is not None:
            detail = f"was ${cleared.cap_cents / 100:,.2f}"
            audit.record(db, "budget_cleared", subject, where, detail=detail)
    probe = Cap(team_id=team_id, channel_id=scope, period=parsed.period, cap_cents=1)
    return blocks.cap_cleared(cleared, blocks.cap_name(probe))


def show(db: Database, team_id: str, channel_id: str, admins: tuple[str, ...]) -> dict[str, Any]:
    now = datetime.now(UTC)
    capped = {(s.cap.channel_id != "", s.cap.period): s for s in standings(db, team_id, channel_id)}
    starts = {period: period_start(period, now) for period in PERIODS}
    rows: list[tuple[Period, bool, Standing | None, tuple[int, int]]] = []
    for in_channel in (False, True):
        for period in PERIODS:
            found = capped.get((in_channel, period))
            spend = store.spend(
                db, team_id, as_stored(starts[period]), channel_id if in_channel else None
            )
            rows.append((period, in_channel, found, spend))
    return blocks.budget_status(channel_id, rows, starts, admins)


# ---------------------------------------------------------------------------------------------
# Approve and Decline

_CLAIM: dict[str, Callable[[Database, str, str], bool]] = {
    "launch": launch.claim_approved,
    "batch": batches.claim_approved,
    "compare": compare.claim_approved,
}


def _what(db: Database, approval: Approval) -> str:
    if approval.subject_kind == "launch":
        return "a test call"
    if approval.subject_kind == "batch":
        count = len(batch_store.get_items(db, approval.subject_id))
        return f"a batch of {count} run{'' if count == 1 else 's'}"
    return f"compare {approval.subject_id[:8]}"


def _show_decided(services: Services, approval_id: int, why: str | None = None) -> None:
    """Every copy of the request (one per admin) gives way to the line of record."""
    approval = store.get_approval(services.db, approval_id)
    assert approval is not None
    decided = blocks.approval_decided(approval, _what(services.db, approval), why)
    for copy in messages.owned_by(services.db, "approval", str(approval.id)):
        services.outbox.show(copy.key, copy.channel, decided)


def _status(db: Database, kind: ApprovalSubject, subject_id: str) -> str | None:
    """Where the launch (batch, compare) stands: `proposed` until somebody decides it."""
    found: Launch | BatchRecord | CompareRecord | None
    if kind == "launch":
        found = launches.get_launch(db, subject_id)
    elif kind == "batch":
        found = batch_store.get_batch(db, subject_id)
    else:
        found = compare_store.get_compare(db, subject_id)
    return found.status if found is not None else None


def settle(services: Services, kind: ApprovalSubject, subject_id: str, user_id: str) -> None:
    """After a Start or Cancel click on a launch (batch, compare): if that decided it (started
    once the cap allowed it, cancelled, expired), an approval still waiting for it is closed
    and every copy of its request gives way to the line of record."""
    db = services.db
    approval = store.approval_for(db, (kind, subject_id))
    if approval is None or approval.status != "waiting":
        return
    status = _status(db, kind, subject_id)
    if status in (None, "proposed"):
        return
    if not store.decide_approval(db, approval.id, "void", user_id):
        return
    if status == "cancelled":
        why = f"cancelled by <@{user_id}>, so nothing was started"
    elif status == "expired":
        why = "its confirmation expired, so nothing was started"
    else:
        why = f"<@{user_id}> pressed Start again once the caps allowed it"
    _show_decided(services, approval.id, why)


def _admins_text(admins: tuple[str, ...]) -> str:
    return ", ".join(f"<@{a}>" for a in admins) or "nobody yet (THUNDERBOT_ADMINS is empty)"


def _not_admin(services: Services, verb: str) -> str:
    admins = _admins_text(admins_of(services))
    return f"Only an admin can {verb} spending over a cap. Admins: {admins}."


def _already(approval: Approval) -> str:
    by = f"<@{approval.decided_by}>" if approval.decided_by else "someone"
    if approval.status == "void":
        return "This request was closed, so there is nothing to decide: it says why."
    return f"Already {approval.status} by {by}."


def _expired(services: Services, approval: Approval, admin_id: str) -> bool:
    if approval.created_at >= now_iso(APPROVAL_LIFETIME):
        return False
    if store.decide_approval(services.db, approval.id, "void", admin_id):
        _show_decided(services, approval.id)
    return True


class _Gone(Exception):
    """What was to be approved was decided another way first; the approval is undone."""


async def approve(services: Services, approval_id: int, admin_id: str) -> str:
    """An admin's Approve: the launch (batch, compare) held over a cap starts, exactly once.
    Returns what the admin is told."""
    if admin_id not in services.settings.admins:
        return _not_admin(services, "approve")
    db = services.db
    approval = store.get_approval(db, approval_id)
    if approval is None:
        return "I have no record of that request any more."
    if approval.status != "waiting":
        return _already(approval)
    if _expired(services, approval, admin_id):
        return (
            "This request is more than a day old, so I didn't start anything. Ask for a fresh one."
        )
    refusal = await permissions.check(
        services,
        "start",
        team_id=approval.team_id,
        channel_id=approval.channel_id,
        user_id=approval.requested_by,
    )
    if refusal is not None:
        return await _not_permitted(services, approval, admin_id)
    # The requester's consent, claimed now: in one transaction with the approval.
    unmade = _decide(services, approval, "approved", admin_id, _claim_consent)
    if unmade is not None:
        return unmade
    text = await _proceed(services, approval)
    await tell(
        services,
        approval.channel_id,
        approval.requested_by,
        f"<@{admin_id}> approved your {_what(db, approval)} over the spend cap. {text}",
    )
    return text


async def _not_permitted(services: Services, approval: Approval, admin_id: str) -> str:
    """Approve on a launch whose requester may no longer start test calls there: nothing
    starts, the request is closed saying why, and the requester is told."""
    who = f"<@{approval.requested_by}>"
    where = place(approval.channel_id)
    if store.decide_approval(services.db, approval.id, "void", admin_id):
        why = f"{who} may no longer start test calls in {where}, so nothing was started"
        _show_decided(services, approval.id, why)
        await tell(
            services,
            approval.channel_id,
            approval.requested_by,
            f"<@{admin_id}> pressed Approve on your {_what(services.db, approval)} over the "
            f"spend cap, but you may no longer start test calls in {where}: nothing was "
            "started or charged.",
        )
    return (
        f"I didn't start it: {who} may no longer start test calls in {where} (an admin "
        "changed who may, with `/testcall admin`). The request is closed."
    )


async def _proceed(services: Services, approval: Approval) -> str:
    """Start what was approved; the words of its outcome."""
    runs: dict[str, Callable[[Services, str], Awaitable[Any]]] = {
        "launch": launch.proceed,
        "batch": batches.proceed,
        "compare": compare.proceed,
    }
    renders: dict[str, Callable[[Any], dict[str, Any]]] = {
        "launch": launch_outcome,
        "batch": batch_outcome,
        "compare": compare_outcome,
    }
    outcome = await runs[approval.subject_kind](services, approval.subject_id)
    return str(renders[approval.subject_kind](outcome)["text"])


async def decline(services: Services, approval_id: int, admin_id: str) -> str:
    """An admin's Decline: nothing starts, and the confirmation is closed."""
    if admin_id not in services.settings.admins:
        return _not_admin(services, "decline")
    db = services.db
    approval = store.get_approval(db, approval_id)
    if approval is None:
        return "I have no record of that request any more."
    unmade = _decide(services, approval, "declined", admin_id, _close)
    if unmade is not None:
        return unmade
    await tell(
        services,
        approval.channel_id,
        approval.requested_by,
        f"<@{admin_id}> declined your {_what(db, approval)} over the spend cap: nothing was "
        "started or charged.",
    )
    return "Declined: nothing was started or charged."


def _decide(
    services: Services,
    approval: Approval,
    decision: Literal["approved", "declined"],
    admin_id: str,
    follows: Callable[[Database, Approval, str], bool],
) -> str | None:
    """Record an admin's decision, with what `follows` from it, in one transaction, and close
    every copy of the request. None when it was made; else the words saying why not (decided
    before, or its launch started, cancelled or expired another way)."""
    db = services.db
    try:
        with db.atomic():
            if not store.decide_approval(db, approval.id, decision, admin_id):
                return _already(store.get_approval(db, approval.id) or approval)
            if not follows(db, approval, admin_id):
                raise _Gone
            _record_decision(db, decision, approval, admin_id)
    except _Gone:
        store.decide_approval(db, approval.id, "void", admin_id)
        _show_decided(services, approval.id)
        verb = "approve" if decision == "approved" else "decline"
        return f"That was already started, cancelled or expired another way: nothing to {verb}."
    _show_decided(services, approval.id)
    return None


def _claim_consent(db: Database, approval: Approval, admin_id: str) -> bool:
    return _CLAIM[approval.subject_kind](db, approval.subject_id, approval.requested_by)


def _record_decision(
    db: Database, action: Literal["approved", "declined"], approval: Approval, admin_id: str
) -> None:
    """An admin's decision in the audit trail, with the estimate that was over the cap."""
    audit.record(
        db,
        action,
        (approval.subject_kind, approval.subject_id),
        audit.Where(admin_id, approval.team_id, approval.channel_id),
        detail=audit_detail(f"asked by {approval.requested_by}: {approval.reason}"),
        cost_cents=approval.estimate_cents,
    )


def _close(db: Database, approval: Approval, admin_id: str) -> bool:
    """A declined launch (batch, compare) can never be started; False when it was already
    decided another way."""
    if approval.subject_kind == "launch":
        return launches.claim_launch(db, approval.subject_id, to="cancelled", by=admin_id)
    if approval.subject_kind == "batch":
        return batch_store.claim_batch(db, approval.subject_id, to="cancelled", by=admin_id)
    if not compare_store.claim_compare(db, approval.subject_id, to="cancelled", by=admin_id):
        return False
    for member in compare_store.batches_of(db, approval.subject_id):
        batch_store.claim_batch(db, member.id, to="cancelled", by=admin_id)
    return True
