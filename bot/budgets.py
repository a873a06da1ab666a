"""Spend caps: what counts against them, the check made when Start is pressed, the warnings at
50% and 80%, and what happens over a cap (refused, or waiting for an admin's approval).

Spend in a period is what the runs started in it were billed, plus the estimates reserved at
consent for runs not billed yet. The estimate is reserved, and the caps checked, by `reserve`,
called inside the transaction that claims the launch (batch, compare): two Start clicks at the
edge of a cap take turns, so the second sees the first's reservation. Periods are UTC days and
months.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlite_utils import Database

from bot import audit
from bot.services import Services
from storage import batches as batch_store
from storage import budgets as store
from storage import compares as compare_store
from storage import runs as run_store
from storage.budgets import Approval, ApprovalSubject, Cap, HoldOwner, Over, Period
from storage.db import now_iso
from storage.models import BatchRecord, CompareRecord, Launch, MessageKey

log = logging.getLogger(__name__)

# What a run on a target with no billed runs yet is counted at, until it has some: more than
# the few minutes of a typical test call cost at twice the normal rate.
UNKNOWN_RUN_CENTS = 100
LEVELS = (50, 80)  # per cent of a cap, announced once per period
MAX_CAP_CENTS = 100_000_000  # $1,000,000


# ---------------------------------------------------------------------------------------------
# The arithmetic (pure)


def period_start(period: Period, now: datetime) -> datetime:
    """Midnight UTC starting the day or month `now` is in."""
    now = now.astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def as_stored(moment: datetime) -> str:
    """A time as the database stores it (`storage.db.now_iso`), so the two compare as text."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Standing:
    """Where one cap stands: billed and reserved spend since its period began."""

    cap: Cap
    start: datetime
    billed: int
    held: int

    @property
    def spent(self) -> int:
        return self.billed + self.held

    @property
    def room(self) -> int:
        return self.cap.cap_cents - self.spent


def over_caps(standings: Sequence[Standing], adding: int) -> list[Standing]:
    """The caps that spending `adding` more cents would take past their amount (reaching the
    amount exactly is within it)."""
    return [s for s in standings if s.spent + adding > s.cap.cap_cents]


def levels_reached(spent: int, cap_cents: int) -> tuple[int, ...]:
    """The warning levels (per cent) that `spent` has reached on a cap of `cap_cents`."""
    return tuple(level for level in LEVELS if spent * 100 >= level * cap_cents)


def over_setting(breaches: Sequence[Standing]) -> Over:
    """What happens over these caps: refused if any of them says so, else wait for approval."""
    return "refuse" if any(s.cap.over == "refuse" for s in breaches) else "wait"


def each_run(costs: Sequence[int]) -> int:
    """A run's estimate: the average of the target's recent billed runs, or UNKNOWN_RUN_CENTS."""
    estimate = audit.estimate(costs)
    return UNKNOWN_RUN_CENTS if estimate is None else estimate


# ---------------------------------------------------------------------------------------------
# What a consent would spend


@dataclass(frozen=True)
class Charge:
    """What one consent reserves: an estimate per planned run, grouped by what owns the runs
    (a launch, or each batch of a request)."""

    team_id: str
    channel_id: str
    holds: tuple[tuple[HoldOwner, str, tuple[int, ...]], ...]
    what: str  # "this test call", "these 5 runs"

    @property
    def total(self) -> int:
        return sum(sum(estimates) for _, _, estimates in self.holds)

    @property
    def runs(self) -> int:
        return sum(len(estimates) for _, _, estimates in self.holds)


def _runs_words(count: int) -> str:
    return "this test call" if count == 1 else f"these {count} runs"


def launch_charge(db: Database, launch: Launch) -> Charge:
    cents = each_run(run_store.recent_costs(db, launch.target_type, launch.target_id))
    return Charge(
        launch.team_id, launch.channel_id, (("launch", launch.id, (cents,)),), "this test call"
    )


def _batch_hold(db: Database, batch: BatchRecord) -> tuple[HoldOwner, str, tuple[int, ...]]:
    count = len(batch_store.get_items(db, batch.id))
    cents = each_run(run_store.recent_costs(db, batch.target_type, batch.target_id))
    return ("batch", batch.id, (cents,) * count)


def batch_charge(db: Database, batch: BatchRecord) -> Charge:
    """A batch (suite run, smoke test) counts in full at consent."""
    hold = _batch_hold(db, batch)
    return Charge(batch.team_id, batch.channel_id, (hold,), _runs_words(len(hold[2])))


def compare_charge(db: Database, compare: CompareRecord) -> Charge:
    """A compare counts every run on every target at consent."""
    holds = tuple(_batch_hold(db, batch) for batch in compare_store.batches_of(db, compare.id))
    runs = sum(len(estimates) for _, _, estimates in holds)
    return Charge(compare.team_id, compare.channel_id, holds, _runs_words(runs))


# ---------------------------------------------------------------------------------------------
# The check, inside the claim's transaction


def standings(
    db: Database, team_id: str, channel_id: str, *, now: datetime | None = None
) -> list[Standing]:
    """Where each cap a launch in `channel_id` answers to stands now."""
    moment = now or datetime.now(UTC)
    found = []
    for cap in store.caps_for(db, team_id, channel_id):
        start = period_start(cap.period, moment)
        billed, held = store.spend(db, team_id, as_stored(start), cap.channel_id or None)
        found.append(Standing(cap, start, billed, held))
    return found


class OverCap(Exception):
    """A consent that would take spend past a cap; raised inside the claim's transaction, so
    the claim and everything recorded with it is undone."""

    def __init__(self, charge: Charge, breaches: list[Standing]) -> None:
        super().__init__(f"{charge.what} would pass {len(breaches)} cap(s)")
        self.charge = charge
        self.breaches = breaches


def reserve(db: Database, charge: Charge, *, approved: bool = False) -> None:
    """Reserve a consent's estimates, or raise OverCap when they would take spend past a cap
    (unless an admin approved going over). Call it inside the transaction of the claim."""
    breaches = over_caps(standings(db, charge.team_id, charge.channel_id), charge.total)
    if breaches and not approved:
        raise OverCap(charge, breaches)
    at = now_iso()
    for kind, owner_id, estimates in charge.holds:
        store.add_holds(
            db,
            (kind, owner_id),
            team_id=charge.team_id,
            channel_id=charge.channel_id,
            at=at,
            estimates=list(estimates),
        )


# ---------------------------------------------------------------------------------------------
# Over a cap


@dataclass(frozen=True)
class OverBudget:
    """Start was pressed over a spend cap: nothing started. `approval` is the request posted
    for an admin (None: refused by the cap's setting)."""

    charge: Charge
    breaches: tuple[Standing, ...]
    admins: tuple[str, ...]
    approval: Approval | None = None
    asked_before: bool = False  # a click before this one already asked


def audit_detail(text: str) -> str:
    """An audit line's detail: short plain words, as the trail keeps them."""
    limit = audit.DETAIL_CHARS
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def approval_key(approval_id: int, admin_id: str) -> MessageKey:
    """The copy of an approval request sent to one admin by direct message. Every copy of a
    request shares its owner (`("approval", id)`), so all of them are found when it is
    decided."""
    return ("approval", str(approval_id), f"dm {admin_id}")


def stopped(
    services: Services,
    subject: tuple[ApprovalSubject, str],
    user_id: str,
    over: OverCap,
) -> OverBudget:
    """What a Start click over a cap comes to: refused, or an approval asked of each admin by
    direct message (once, however often Start is pressed), with a record in the audit trail.
    The request goes to the admins rather than the run's channel: a direct message or a
    private channel may have no admin in it, or not let the bot post."""
    from bot.blocks.budgets import approval_request, breach_words  # builders read this module

    db = services.db
    charge = over.charge
    admins = tuple(sorted(services.settings.admins))
    breaches = tuple(over.breaches)
    reason = breach_words(breaches[0], charge.total, charge.what, plain=True)
    where = audit.Where(user_id, charge.team_id, charge.channel_id)
    if over_setting(breaches) == "refuse":
        with db.atomic():
            audit.record(
                db,
                "over_budget",
                subject,
                where,
                detail=audit_detail(f"refused: {reason}"),
                cost_cents=charge.total,
            )
        return OverBudget(charge, breaches, admins)
    with db.atomic():
        approval, asked = store.ask_approval(
            db,
            subject,
            team_id=charge.team_id,
            channel_id=charge.channel_id,
            requested_by=user_id,
            estimate_cents=charge.total,
            reason=reason,
        )
        if asked:
            audit.record(
                db,
                "over_budget",
                subject,
                where,
                detail=audit_detail(f"waiting for approval: {reason}"),
                cost_cents=charge.total,
            )
            request = approval_request(approval, charge, breaches, admins)
            for admin in admins:
                services.outbox.show(approval_key(approval.id, admin), admin, request)
    return OverBudget(charge, breaches, admins, approval, asked_before=not asked)


# ---------------------------------------------------------------------------------------------
# Warnings


def warn(services: Services, team_id: str, channel_id: str) -> None:
    """Announce in the channel each cap that has newly reached 50% or 80% of its amount this
    period (each level once per period per cap), through the outbox."""
    from bot.blocks.budgets import warning

    db = services.db
    try:
        for standing in standings(db, team_id, channel_id):
            reached = levels_reached(standing.spent, standing.cap.cap_cents)
            if not reached:
                continue
            start = as_stored(standing.start)
            with db.atomic():
                new = [lvl for lvl in reached if store.mark_warned(db, standing.cap, start, lvl)]
                if not new:
                    continue
                level = max(new)
                scope = standing.cap.channel_id or "workspace"
                key: MessageKey = ("budget", f"{scope}:{standing.cap.period}:{start}", f"{level}")
                services.outbox.show(key, channel_id, warning(standing, level))
    except Exception:  # a warning never stands in the way of a launch already consented to
        log.exception("could not check the spend caps of %s", channel_id)


def admins_of(services: Services) -> tuple[str, ...]:
    return tuple(sorted(services.settings.admins))
