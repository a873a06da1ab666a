"""The pure parts of the benchmark figures: percentiles, pass/fail, what is counted as Slack
hearing about a run, and the seeded history. Timing itself is never asserted here."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import pytest

from benchmarks.common import format_line
from benchmarks.figure import Figure, figure, median, meets, percentile
from benchmarks.scale import Plan, build_history, grown, ratio, seed_history
from benchmarks.slack_calls import batch_command, per_run
from benchmarks.slack_latency import (
    Burst,
    Round,
    first_touches,
    latencies_ms,
    latency_figures,
    touched_run,
)
from bot.sandbox.slack import SlackCall
from storage.db import open_db


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(100, 0, -1)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 1) == 7
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 0)


def test_a_run_never_reached_counts_as_infinitely_late() -> None:
    lat = latencies_ms({1: 10.0, 2: 10.0, 3: 10.0}, {1: 10.005, 2: 10.010})
    assert sorted(lat)[:2] == pytest.approx([5.0, 10.0])
    assert math.isinf(percentile(lat, 99))
    assert percentile(lat, 50) == pytest.approx(10.0)


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(median([]))
    assert ratio([4.0, 4.0], [2.0]) == 2
    assert math.isnan(ratio([], [1.0]))


@pytest.mark.parametrize(
    ("value", "comparison", "target", "passed"),
    [
        (19.9, "<", 20, True),
        (20, "<", 20, False),
        (1.5, "<=", 1.5, True),
        (1.55, "<=", 1.5, False),
        (0, "==", 0, True),
        (1, "==", 0, False),
        (math.inf, "<", 200, False),
        (math.nan, "<=", 2, False),
    ],
)
def test_pass_or_fail(value: float, comparison: str, target: float, passed: bool) -> None:
    assert meets(value, comparison, target) is passed
    assert figure("x", value, "ms", comparison, target).passed is passed


def test_an_unknown_comparison_is_refused() -> None:
    with pytest.raises(ValueError):
        meets(1, "~", 1)


def test_one_line_per_figure() -> None:
    item = Figure("webhook to Slack p50", 12.345, "ms", 20, "<", "1000 runs", True)
    shown = " ".join(format_line(item).split())
    assert shown == "webhook to Slack p50 12.3 ms (target < 20.0 ms) 1000 runs PASS"
    missed = figure("Slack calls for unchanged runs", 3, "calls", "==", 0)
    assert format_line(missed).endswith("FAIL")
    assert "(target = 0.0 calls)" in format_line(missed)
    assert "∞ ms" in format_line(figure("p99", math.inf, "ms", "<", 200))


def test_the_first_call_naming_a_card_or_its_thread_touches_the_run() -> None:
    cards = {("C1", "100.000001"): 7, ("C2", "100.000002"): 8}
    calls = [
        SlackCall("auth.test", {}),
        SlackCall("chat.update", {"channel": "C1", "ts": "100.000002"}),  # not a card there
        SlackCall("chat.postMessage", {"channel": "C2", "thread_ts": "100.000002"}),
        SlackCall("chat.update", {"channel": "C1", "ts": "100.000001"}),
        SlackCall("chat.update", {"channel": "C2", "ts": "100.000002"}),
    ]
    assert [touched_run(call, cards) for call in calls] == [None, None, 8, 7, 8]
    first = first_touches(calls, cards)
    assert {run: call.method for run, call in first.items()} == {
        8: "chat.postMessage",
        7: "chat.update",
    }
    assert first_touches(calls, cards, start=4) == {8: calls[4]}


def test_calls_per_run_and_the_batch_typed() -> None:
    assert per_run(30, 20) == 1.5
    assert math.isnan(per_run(3, 0))
    assert batch_command(["a", "b c"]) == 'batch agent:12 --stagger 0 "a" "b c"'


def test_a_query_is_reported_when_it_grows_with_the_history() -> None:
    assert grown(Plan("q", "SCAN runs", 0.05), Plan("q", "SCAN runs", 40.0))
    assert not grown(Plan("q", "SEARCH", 0.01), Plan("q", "SEARCH", 0.012))
    assert not grown(Plan("q", "SCAN s", 0.01), Plan("q", "SCAN s", 0.5)), "under a millisecond"


def test_the_history_has_the_runs_asked_for_in_the_bot_schema() -> None:
    db = open_db(":memory:")
    counts = seed_history(db, 600)
    assert counts["runs"] == 600
    assert db.execute("select count(*) from runs").fetchone()[0] == 600
    for table, count in counts.items():
        assert db.execute(f"select count(*) from [{table}]").fetchone()[0] == count, table
    statuses = Counter(row[0] for row in db.execute("select status from runs"))
    assert statuses["completed"] > statuses["failed"] > 0
    assert 0 < statuses["in_progress"] + statuses["queued"] <= 3
    teams = {row[0] for row in db.execute("select team_id from runs")}
    assert len(teams) > 1
    assert db.execute("select count(distinct channel_id) from runs").fetchone()[0] > 10
    assert db.execute("select count(distinct started_by) from runs").fetchone()[0] > 10
    kinds = {row[0] for row in db.execute("select kind from batches")}
    assert {"batch", "suite"} <= kinds
    # Every batch run is an item of its batch; every finished run has its result message.
    orphans = db.execute(
        "select count(*) from runs where batch_id is not null and run_id not in"
        " (select run_id from batch_items)"
    ).fetchone()[0]
    assert orphans == 0
    missing = db.execute(
        "select count(*) from runs where status in ('completed', 'failed') and cast(run_id as"
        " text) not in (select owner_id from slack_messages where role = 'result')"
    ).fetchone()[0]
    assert missing == 0
    assert db.execute("select count(*) from grades").fetchone()[0] > 0
    assert db.execute("select count(*) from suites").fetchone()[0] > 0


def test_every_seeded_column_is_one_of_the_schema() -> None:
    db = open_db(":memory:")
    history = build_history(200, now=datetime(2025, 6, 1, tzinfo=UTC))
    for table, rows in history.tables.items():
        columns = set(db.table(table).columns_dict)
        assert rows, table
        assert set(rows[0]) <= columns, (table, set(rows[0]) - columns)
        assert all(set(row) == set(rows[0]) for row in rows), table
    assert history.count("runs") == 200


def test_the_history_is_the_same_for_the_same_seed() -> None:
    now = datetime(2025, 6, 1, tzinfo=UTC)
    first, again = build_history(150, now=now), build_history(150, now=now)
    assert first.tables["runs"] == again.tables["runs"]


def burst(latencies: list[float], cpu: float = 1.0) -> Burst:
    return Burst(
        latencies=latencies,
        cpu_per_run=cpu,
        own_cpu_per_run=0.5,
        sending=1.0,
        statuses=Counter({200: len(latencies)}),
        span=1.0,
        methods=Counter({"chat.update": len(latencies)}),
        pace=1.0,
    )


def test_the_latency_figures_are_medians_of_rounds_with_the_bare_relay_beside_them() -> None:
    rounds = [
        Round(burst([30.0, 34.0, 90.0]), burst([10.0, 12.0, 40.0]), Counter()),
        Round(burst([18.0, 19.0, 60.0]), burst([9.0, 11.0, 30.0]), Counter()),
        Round(burst([28.0, 33.0, 300.0]), burst([8.0, 16.0, 20.0]), Counter()),
    ]

    p50, p99, relay = latency_figures(rounds, runs=3, channels=1)

    assert (p50.value, p50.passed) == (33.0, False)  # round p50s 34, 19, 33
    assert (p99.value, p99.passed) == (90.0, True)  # round p99s 90, 60, 300
    assert relay.value == 12.0 and relay.informative  # round p50s 12, 11, 16
    assert "2.75x the bare relay's 12 ms" in p50.detail
    assert "rounds 34, 19, 33" in p50.detail
    assert "rounds 90, 60, 300" in p99.detail
    assert format_line(relay).endswith("info")


def test_a_run_the_relay_never_touched_makes_its_figure_infinite() -> None:
    rounds = [Round(burst([5.0, 6.0, 7.0]), burst([5.0, math.inf, math.inf]), Counter())]

    _, _, relay = latency_figures(rounds, runs=3, channels=1)

    assert math.isinf(relay.value)
    assert "all 1/3 touched" in relay.detail
