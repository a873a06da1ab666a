"""Smoke tests and suite trends from Slack, end to end over HTTP: `/testcall smoke` runs a
target's marked smoke suite (or five built-in happy paths) with no stagger, and
`/testcall suite trend` uploads a chart of a suite's runs into the channel."""

from __future__ import annotations

import json
import os
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import fmean
from typing import Any

import pytest

from bot import ids
from bot.batches import UnknownSuite
from bot.charts import TrendChartPoint, trend_png
from bot.cli import main
from bot.sandbox.slack import Message
from bot.sandbox.stack import LocalStack
from bot.smoke import BUILT_IN_CASES
from bot.trend import series, write_trend
from storage import suites as suite_store
from storage.db import open_db
from tests.helpers import CHANNEL, cards, rows, shown
from tests.test_batches import batch_posts, card_showing, confirm, import_suite
from tests.test_suites_slack import run_suite

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

HAPPY: list[dict[str, Any]] = [
    {"name": "hours", "scenario_prompt": "Ask when you are open.", "expected_outcome": "success"},
    {"name": "address", "scenario_prompt": "Ask for the address.", "expected_outcome": "success"},
    {"name": "goodbye", "scenario_prompt": "Say thanks and goodbye."},
]


def notes(stack: LocalStack, needle: str) -> list[str]:
    return [e.text for e in stack.fake.ephemerals if needle in e.text]


# ---------------------------------------------------------------------------------------------
# Smoke tests


async def test_a_marked_smoke_suite_runs_once_per_case_with_no_stagger(stack: LocalStack) -> None:
    # The suite's own settings (repeat 2, stagger 5) do not apply to a smoke test.
    import_suite(stack, "happy", HAPPY, settings={"repeat": 2, "stagger_seconds": 5})
    maria = stack.user()
    await maria.slash("alias set support agent:12")
    marked = await confirm(stack, "suite smoke happy support")
    assert "Suite `happy` (3 cases) is now the smoke suite of agent 12, alias support" in shown(
        marked
    )
    [mark] = rows(stack, "smoke_suites")
    assert (mark["target_type"], mark["target_id"], mark["suite"]) == ("agent", 12, "happy")
    assert mark["marked_by"] == "U0MARIA"

    confirmation = await confirm(stack, "smoke agent:12")
    assert "Start a smoke test of 3 test calls (suite happy)?" in shown(confirmation)
    assert "3 cases · stagger 0 s" in shown(confirmation)
    assert batch_posts(stack) == [], "nothing is sent before consent"

    await maria.click(confirmation, ids.START_BATCH)
    card = await card_showing(stack, "0/3")
    [request] = batch_posts(stack)
    assert request.json["scenario_prompts"] == [case["scenario_prompt"] for case in HAPPY]
    assert (request.json["run_count"], request.json["stagger_seconds"]) == (3, 0)
    assert request.json["consent_to_charge"] is True
    assert "Smoke test · suite happy · agent 12 · 3 cases · stagger 0 s" in shown(card)
    [batch] = rows(stack, "batches")
    assert (batch["kind"], batch["suite"], batch["repeat"]) == ("smoke", "happy", 1)
    expected = [item["expected"] for item in rows(stack, "batch_items")]
    assert expected == [json.dumps("success"), json.dumps("success"), None]


async def test_without_a_marked_suite_five_built_in_happy_paths_run(stack: LocalStack) -> None:
    confirmation = await confirm(stack, "smoke agent:12")
    assert "Start a smoke test of 5 test calls?" in shown(confirmation)
    assert "5 scenarios · stagger 0 s" in shown(confirmation)
    assert "greeting" in shown(confirmation)

    await stack.user().click(confirmation, ids.START_BATCH)
    card = await card_showing(stack, "0/5")
    [request] = batch_posts(stack)
    assert request.json["scenario_prompts"] == [prompt for _, prompt in BUILT_IN_CASES]
    assert (request.json["run_count"], request.json["stagger_seconds"]) == (5, 0)
    assert "Smoke test · agent 12 · 5 scenarios · stagger 0 s" in shown(card)
    [batch] = rows(stack, "batches")
    assert (batch["kind"], batch["suite"]) == ("smoke", None)
    items = rows(stack, "batch_items")
    assert [item["case_name"] for item in items] == [name for name, _ in BUILT_IN_CASES]
    assert {item["expected"] for item in items} == {json.dumps("success")}

    # Each run is held against its expectation: a successful call passes.
    for run_id in sorted(stack.sandbox.runs):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    finished = await card_showing(stack, "5/5")
    assert "Smoke test on Support agent (agent 12)" in finished.text


async def test_marking_an_unknown_suite_is_refused_and_nothing_is_stored(
    stack: LocalStack,
) -> None:
    refused = await confirm(stack, "suite smoke nosuch agent:12")
    assert 'There is no suite "nosuch"' in shown(refused)
    assert rows(stack, "smoke_suites") == []
    unknown_alias = await confirm(stack, "smoke nowhere")
    assert 'I don\'t know the alias "nowhere"' in shown(unknown_alias)
    assert rows(stack, "batches") == []


async def test_a_marked_suite_deleted_since_is_named_and_unmarked(stack: LocalStack) -> None:
    import_suite(stack, "happy", HAPPY)
    await confirm(stack, "suite smoke happy agent:12")
    suite_store.delete_suite(stack.services.db, "happy")
    refused = await confirm(stack, "smoke agent:12")
    assert '"happy", no longer exists' in shown(refused)
    assert rows(stack, "smoke_suites") == [] and rows(stack, "batches") == []
    again = await confirm(stack, "smoke agent:12")
    assert "Start a smoke test of 5 test calls?" in shown(again)


# ---------------------------------------------------------------------------------------------
# Trends

TREND_V1: list[dict[str, Any]] = [
    {
        "name": "refund-policy",
        "scenario_prompt": "[score: 91] Ask about the refund policy.",
        "expected_outcome": "success",
    },
    {
        "name": "human-handoff",
        "scenario_prompt": "[score: 55] Ask for a human.",
        "expected_outcome": {"min_score": 80},
    },
    {
        "name": "off-topic",
        "scenario_prompt": "[flaky] [score: 84] Ask about the weather.",
        "expected_outcome": "success",
    },
]


def uploads(stack: LocalStack) -> list[Message]:
    return [m for m in stack.fake.messages.get(CHANNEL, []) if m.files]


async def test_a_suite_trend_is_charted_in_the_channel(
    live_stack: LocalStack, tmp_path: Path
) -> None:
    stack = live_stack
    import_suite(stack, "refunds", TREND_V1, target="agent:12")
    first = await run_suite(stack, "suite run refunds --stagger 0", 0)
    assert "2 of 3 cases passed" in shown(first)
    await stack.user("U0LI").click(first, ids.BLESS_BATCH)
    await stack.fake.wait_for(lambda: "Blessed as baseline" in shown(cards(stack)[0]) or None)

    # The handoff gets fixed; the off-topic case's two runs now disagree.
    v2 = [dict(case) for case in TREND_V1]
    v2[1]["scenario_prompt"] = "[score: 88] Ask for a human."
    import_suite(stack, "refunds", v2, target="agent:12")
    second = await run_suite(stack, "suite run refunds --repeat 2 --stagger 0", 1)
    assert "2 of 3 cases passed" in shown(second)

    points = series(stack.services.db, "refunds", threshold=stack.services.threshold)
    assert [(p.cases, p.passed, p.flaky) for p in points] == [(3, 2, 0), (3, 2, 1)]
    assert [p.pass_rate for p in points] == pytest.approx([2 / 3, 2 / 3])
    assert [p.blessed for p in points] == [True, False]
    assert [p.target for p in points] == ["agent 12", "agent 12"]
    assert points[0].mean_score == pytest.approx(fmean([0.91, 0.55, 0.84]))
    second_batch = rows(stack, "batches")[-1]["id"]
    graded = [
        grade["score"]
        for run in rows(stack, "runs")
        if run["batch_id"] == second_batch
        for grade in rows(stack, "grades")
        if grade["call_id"] == run["call_id"]
    ]
    assert len(graded) == 6
    assert points[1].mean_score == pytest.approx(fmean(graded))
    assert series(stack.services.db, "refunds", target=("agent", 13)) == []

    # In Slack: the chart as a PNG file in the channel, with the latest run in its comment.
    answer = await confirm(stack, "suite trend refunds")
    assert "Drawing the trend of suite `refunds`" in shown(answer)
    [message] = await stack.fake.wait_for(lambda: uploads(stack) or None, timeout=30)
    [upload] = [f for f in stack.fake.files.values() if f.filename == "refunds-trend.png"]
    assert upload.completed and upload.content is not None
    assert upload.content.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", upload.content[16:24]) == (720, 500), "IHDR width, height"
    assert upload.alt_txt is not None and "pass rate and mean score over 2 runs" in upload.alt_txt
    assert message.files[0]["name"] == "refunds-trend.png"
    assert message.files[0]["mimetype"] == "image/png"
    assert "Trend of suite `refunds` on agent 12 · 2 runs" in message.text
    assert "asked by <@U0MARIA>" in message.text
    assert "Latest run" in message.text
    assert "2 of 3 cases passed (67%)" in message.text and "1 flaky" in message.text
    assert f"mean score {fmean(graded) * 100:.0f}%" in message.text

    # On a target the suite never ran on: a note to the person, nothing uploaded.
    await confirm(stack, "suite trend refunds agent:13")
    await stack.fake.wait_for(lambda: notes(stack, "no finished runs on agent 13") or None)
    assert len(uploads(stack)) == 1

    # The command line's chart: the same runs, to a file.
    path = tmp_path / "trend.png"
    assert write_trend(stack.services.db, "refunds", None, path) == 2
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert write_trend(stack.services.db, "refunds", "agent:12", tmp_path / "a12.png") == 2
    assert write_trend(stack.services.db, "refunds", "agent:13", tmp_path / "none.png") == 0
    assert not (tmp_path / "none.png").exists()

    # `thunderbot suite trend` on the bot's database.
    assert stack.settings is not None
    os.environ["THUNDERBOT_DB"] = stack.settings.thunderbot_db
    try:
        assert main(["suite", "trend", "refunds", "-o", str(tmp_path / "cli.png")]) == 0
        assert (tmp_path / "cli.png").read_bytes().startswith(PNG_SIGNATURE)
        assert main(["suite", "trend", "nosuch", "-o", str(tmp_path / "x.png")]) == 1
    finally:
        del os.environ["THUNDERBOT_DB"]


async def test_a_suite_without_finished_runs_gets_a_note(stack: LocalStack) -> None:
    import_suite(stack, "refunds", TREND_V1, target="agent:12")
    answer = await confirm(stack, "suite trend refunds")
    assert "Drawing the trend" in shown(answer)
    [note] = await stack.fake.wait_for(lambda: notes(stack, "no finished runs") or None)
    assert "Suite `refunds` has no finished runs yet" in note
    assert stack.fake.files == {} and uploads(stack) == []

    unknown = await confirm(stack, "suite trend nosuch")
    assert 'There is no suite "nosuch"' in shown(unknown)


def test_write_trend_names_an_unknown_suite(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "thunderbot.db"))
    with pytest.raises(UnknownSuite):
        write_trend(db, "nosuch", None, tmp_path / "trend.png")
    assert not (tmp_path / "trend.png").exists()


def _point(
    day: int, pass_rate: float, score: float | None, target: str = "agent 12"
) -> TrendChartPoint:
    when = datetime(2025, 11, 3, 14, 2, tzinfo=UTC) + timedelta(days=day)
    return TrendChartPoint(when, pass_rate, score, flaky=day % 3, blessed=day == 1, target=target)


@pytest.mark.parametrize(
    "points",
    [
        [_point(0, 0.75, 0.8)],
        [_point(0, 0.0, None), _point(0, 0.0, 0.0)],  # within one minute; one not graded
        [_point(d, 0.5 + d / 40, 0.7, f"agent {12 + d % 2}") for d in range(12)],
        [_point(d // 4, (d * 37 % 100) / 100, 0.8) for d in range(40)],
    ],
    ids=["one run", "same minute", "two targets", "forty runs"],
)
def test_trend_charts_draw_any_series_as_png_without_warnings(
    points: list[TrendChartPoint],
) -> None:
    png = trend_png(points, title="Suite refunds · agent 12")
    assert png.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", png[16:24]) == (720, 500)


def test_a_trend_chart_needs_a_run() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        trend_png([], title="Suite refunds")


def test_m005_labels_the_suite_runs_of_an_older_database(tmp_path: Path) -> None:
    path = str(tmp_path / "thunderbot.db")
    db = open_db(path)
    # As the previous release left it: no kinds, no smoke suites, a batch and a suite run.
    db.execute("delete from _sqlite_migrations where name = 'm005_batch_kinds'")
    db.table("smoke_suites").drop()
    db.table("batches").transform(drop={"kind"})
    for batch_id, suite in (("plain", None), ("refunds-run", "refunds")):
        db.table("batches").insert(
            {
                "id": batch_id,
                "team_id": "T0",
                "channel_id": CHANNEL,
                "user_id": "U0MARIA",
                "target_type": "agent",
                "target_id": 12,
                "suite": suite,
                "status": "launched",
            }
        )
    db.close()
    upgraded = open_db(path)
    kinds = {row["id"]: row["kind"] for row in upgraded.table("batches").rows}
    assert kinds == {"plain": "batch", "refunds-run": "suite"}
    assert upgraded.table("smoke_suites").exists()
