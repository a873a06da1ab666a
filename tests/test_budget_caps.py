"""The cap arithmetic and what is counted, directly: the check, the warning levels, the periods,
the estimates, and which reservations still count as runs settle."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlite_utils import Database

from bot import budgets
from bot.blocks import budgets as blocks
from bot.budgets import Charge, OverBudget, Standing
from storage import budgets as store
from storage import launches
from storage import runs as run_store
from storage.budgets import Approval, Cap
from storage.db import open_db
from storage.models import Launch, RunRecord

DAY = datetime(2026, 12, 1, tzinfo=UTC)
TEAM = "T0SANDBOX"


def standing(cents: int, billed: int, held: int = 0, *, over: str = "wait", **cap: Any) -> Standing:
    return Standing(
        Cap(
            team_id=TEAM,
            period=cap.get("period", "day"),
            cap_cents=cents,
            over=over,
            **{k: v for k, v in cap.items() if k != "period"},
        ),
        DAY,
        billed,
        held,
    )


def test_a_consent_fits_up_to_the_cap_exactly_and_not_a_cent_more() -> None:
    cap = standing(1000, billed=600, held=300)
    assert budgets.over_caps([cap], 100) == []
    assert budgets.over_caps([cap], 101) == [cap]
    assert budgets.over_caps([], 10_000) == [], "no cap until an admin sets one"


def test_every_cap_a_launch_answers_to_is_checked() -> None:
    roomy, tight = standing(10_000, billed=0), standing(500, billed=450, channel_id="C0QA")
    assert budgets.over_caps([roomy, tight], 100) == [tight]


def test_refuse_wins_over_wait_when_several_caps_are_passed() -> None:
    waits, refuses = standing(100, 100), standing(100, 100, over="refuse")
    assert budgets.over_setting([waits]) == "wait"
    assert budgets.over_setting([waits, refuses]) == "refuse"


def test_warning_levels_at_50_and_80_percent() -> None:
    assert budgets.levels_reached(499, 1000) == ()
    assert budgets.levels_reached(500, 1000) == (50,)
    assert budgets.levels_reached(799, 1000) == (50,)
    assert budgets.levels_reached(800, 1000) == (50, 80)
    assert budgets.levels_reached(5000, 1000) == (50, 80)


def test_periods_begin_at_midnight_utc_on_the_day_and_the_first_of_the_month() -> None:
    moment = datetime(2026, 12, 17, 23, 59, tzinfo=UTC)
    assert budgets.period_start("day", moment) == datetime(2026, 12, 17, tzinfo=UTC)
    assert budgets.period_start("month", moment) == datetime(2026, 12, 1, tzinfo=UTC)
    assert budgets.as_stored(DAY) == "2026-12-01T00:00:00.000+00:00"


def test_a_run_is_estimated_from_recent_bills_or_at_a_dollar_without_any() -> None:
    assert budgets.each_run([16, 18, 14]) == 16
    assert budgets.each_run([]) == budgets.UNKNOWN_RUN_CENTS == 100


@pytest.fixture
def db() -> Database:
    return open_db(":memory:")


def _launch(db: Database, launch_id: str, channel: str = "C0QA") -> Launch:
    launch = launches.save_launch(
        db,
        Launch(
            id=launch_id,
            team_id=TEAM,
            channel_id=channel,
            user_id="U0MARIA",
            target_type="agent",
            target_id=12,
            scenario_prompt="Ask.",
        ),
    )
    with db.atomic():
        assert launches.claim_launch(db, launch.id, to="launching", by="U0MARIA")
        budgets.reserve(db, budgets.launch_charge(db, launch))
    return launch


def _spend(db: Database, channel: str | None = None) -> tuple[int, int]:
    return store.spend(db, TEAM, "2000-01-01T00:00:00.000+00:00", channel)


def _run(launch: Launch, run_id: int, **fields: Any) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        launch_id=launch.id,
        team_id=TEAM,
        channel_id=launch.channel_id,
        started_by="U0MARIA",
        target_type="agent",
        target_id=12,
        created_at=launch.created_at,
        **fields,
    )


def test_a_reservation_counts_until_its_run_is_billed_then_the_bill_counts(db: Database) -> None:
    launch = _launch(db, "a" * 32)
    assert _spend(db) == (0, 100)
    assert launches.finish_launch(db, launch.id, status="launched", run_id=1)
    run_store.save_run(db, _run(launch, 1, status="in_progress", call_id=9))
    assert _spend(db) == (0, 100), "still in flight"
    run_store.merge_run(db, 1, {"status": "completed", "cost_cents": 16})
    assert _spend(db) == (16, 0)


def test_a_launch_that_never_started_or_a_run_that_never_called_releases_it(db: Database) -> None:
    failed = _launch(db, "b" * 32)
    launches.finish_launch(db, failed.id, status="failed", error="HTTP 402")
    assert _spend(db) == (0, 0)
    no_call = _launch(db, "c" * 32)
    launches.finish_launch(db, no_call.id, status="launched", run_id=2)
    run_store.save_run(db, _run(no_call, 2, status="failed", call_id=None))
    assert _spend(db) == (0, 0)


def test_an_unclear_launch_keeps_its_reservation(db: Database) -> None:
    unclear = _launch(db, "d" * 32)
    launches.finish_launch(db, unclear.id, status="unknown", error="timeout")
    assert _spend(db) == (0, 100), "it may have started: it is counted until it is found"


def test_a_channel_counts_only_its_own_spend(db: Database) -> None:
    _launch(db, "e" * 32, channel="C0QA")
    _launch(db, "f" * 32, channel="C0DEV")
    assert _spend(db) == (0, 200)
    assert _spend(db, "C0QA") == (0, 100)


def test_the_check_refuses_inside_the_transaction_and_undoes_the_claim(db: Database) -> None:
    store.set_cap(db, Cap(team_id=TEAM, period="day", cap_cents=150))
    _launch(db, "1" * 32)
    second = launches.save_launch(
        db,
        Launch(
            id="2" * 32,
            team_id=TEAM,
            channel_id="C0QA",
            user_id="U0LI",
            target_type="agent",
            target_id=12,
        ),
    )
    with pytest.raises(budgets.OverCap) as raised, db.atomic():
        assert launches.claim_launch(db, second.id, to="launching", by="U0LI")
        budgets.reserve(db, budgets.launch_charge(db, second))
    assert [s.spent for s in raised.value.breaches] == [100]
    stored = launches.get_launch(db, second.id)
    assert stored is not None and stored.status == "proposed", "the claim was undone"
    assert _spend(db) == (0, 100)
    with db.atomic():
        assert launches.claim_launch(db, second.id, to="launching", by="U0LI")
        budgets.reserve(db, budgets.launch_charge(db, second), approved=True)
    assert _spend(db) == (0, 200), "an approved consent is reserved over the cap"


# ---------------------------------------------------------------------------------------------
# What the builders show; every example is checked as Block Kit in tests/test_blocks.py.


CHARGE = Charge(TEAM, "C0QA", (("launch", "a" * 32, (100,)),), "this test call")
BREACH = standing(1000, billed=840, held=100, channel_id="C0QA")
APPROVAL = Approval(
    id=7,
    subject_kind="launch",
    subject_id="a" * 32,
    team_id=TEAM,
    channel_id="C0QA",
    requested_by="U0MARIA",
    estimate_cents=100,
    created_at="2026-12-01T14:02:00.000+00:00",
)


def budget_examples() -> dict[str, dict[str, Any]]:
    decided = APPROVAL.model_copy(
        update={
            "status": "approved",
            "decided_by": "U0ADMIN",
            "decided_at": "2026-12-01T14:05:00.000+00:00",
        }
    )
    return {
        "budget_approval_request": blocks.approval_request(APPROVAL, CHARGE, [BREACH], ["U0ADMIN"]),
        "budget_approval_decided": blocks.approval_decided(decided, "a test call"),
        "budget_warning": blocks.warning(standing(1000, billed=520), 50),
        "budget_over_waiting": blocks.over_budget(
            OverBudget(CHARGE, (BREACH,), ("U0ADMIN",), APPROVAL)
        ),
        "budget_over_refused": blocks.over_budget(OverBudget(CHARGE, (BREACH,), ("U0ADMIN",))),
        "budget_status": blocks.budget_status(
            "C0QA",
            [
                ("day", False, standing(2000, billed=300, held=100), (300, 100)),
                ("month", False, None, (4100, 100)),
                ("day", True, None, (300, 100)),
                ("month", True, None, (4100, 100)),
            ],
            {"day": DAY, "month": DAY},
            ["U0ADMIN"],
        ),
    }


def test_over_a_cap_the_person_reads_the_figures_and_who_can_approve() -> None:
    waiting = budget_examples()["budget_over_waiting"]["text"]
    assert "This test call (about $1.00) would take <#C0QA>'s daily cap past its limit" in waiting
    assert "$9.40 of $10.00 spent today (Dec 1, UTC), $1.00 of it for runs in flight" in waiting
    assert "I've asked the admin (<@U0ADMIN>) by direct message" in waiting
    alone = blocks.over_budget(OverBudget(CHARGE, (BREACH,), (), APPROVAL))["text"]
    assert "No admin is set (THUNDERBOT_ADMINS), so nobody can approve it" in alone
    assert "asked" not in alone
    refused = budget_examples()["budget_over_refused"]["text"]
    assert refused.startswith("Not started: over a spend cap. Nothing was charged.")


def test_a_warning_tells_the_spend_the_cap_and_the_period() -> None:
    text = budget_examples()["budget_warning"]["text"]
    assert text == (
        "⚠️ The workspace's daily cap is 52% used (past 50%): $5.20 of $10.00 spent today "
        "(Dec 1, UTC)."
    )
