"""Comparing targets from Slack, end to end over HTTP: `/testcall compare` asks once for the
total, sends one batch per target with the same prompts, keeps one card whose table has a row
per target (the best of each column starred), puts every run's reply in the card's thread and
shares the score-against-duration chart there once. And the figures' rules, directly."""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
import re
import struct
from collections.abc import AsyncIterator, Sequence
from statistics import fmean
from typing import Any

import pytest

from bot import ids
from bot.batch_report import BatchReport, Row
from bot.blocks.common import duration, money
from bot.charts import CompareSeries, compare_png
from bot.compare import (
    Latency,
    TargetFigures,
    best_marks,
    percentile,
    response_latencies,
    target_figures,
)
from bot.expectations import Expected
from bot.sandbox.slack import Message
from bot.sandbox.stack import LocalStack
from bot.verdicts import Progress, outcome_of
from storage.models import BatchItem, BatchPart, BatchRecord, GradeRecord, RunRecord
from tests.helpers import CHANNEL, cards, rows, shown
from tests.test_batches import batch_posts, card_showing, confirm, import_suite

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
POLITE = "[score: 92] [duration: 48] Ask about the refund policy."
HANDOFF = "[flaky] [score: 90] [duration: 75] Ask for a human."
CASES: list[dict[str, Any]] = [
    {"name": "refund-policy", "scenario_prompt": POLITE, "expected_outcome": "success"},
    {"name": "human-handoff", "scenario_prompt": HANDOFF},
]


@pytest.fixture
async def quick_stack() -> AsyncIterator[LocalStack]:
    """Runs move on their own, and the channel takes a post every 50 ms, so a compare of 18
    runs (18 replies and the card's edits) lands quickly."""
    async with LocalStack(
        step_seconds=0.05, poll_seconds=0.1, thunderbot_post_interval=0.05
    ) as running:
        yield running


def thread(stack: LocalStack) -> list[Message]:
    found = cards(stack)
    return stack.fake.thread(CHANNEL, found[0].ts) if found else []


def table_rows(card: Message) -> dict[str, list[str]]:
    """The card's table: each target's cells, by the target's label."""
    [text] = [
        block["text"]["text"]
        for block in card.blocks
        if block["type"] == "section" and block["text"]["text"].startswith("```")
    ]
    lines = text.strip("`\n").splitlines()
    assert lines[0].split()[:3] == ["target", "tier", "runs"]
    found = {}
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        found[cells[0]] = cells[1:]
    return found


def nearest_rank(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1]


def gaps_of(transcript: list[dict[str, Any]]) -> list[int]:
    """The caller-to-agent gaps of a sandbox transcript, read independently of the bot."""
    spoken = [e for e in transcript if e["role"] in ("user", "assistant")]
    return [
        now["start_ms"] - before["end_ms"]
        for before, now in itertools.pairwise(spoken)
        if before["role"] == "user" and now["role"] == "assistant"
    ]


def expected_figures(stack: LocalStack, target_id: int) -> dict[str, Any]:
    """What ThunderPhone recorded for a target's runs: the figures its row should show."""
    sandbox = stack.sandbox
    calls = [
        sandbox.calls[run["call_id"]]
        for run in sandbox.runs.values()
        if run["target_id"] == target_id and run["call_id"] is not None
    ]
    scores = {g["call_id"]: g["score"] for g in sandbox.grades.values()}
    graded = [scores[call["call_id"]] for call in calls]
    gaps = [gap for call in calls for gap in gaps_of(sandbox.transcripts[call["call_id"]])]
    return {
        "tier": {call["product"] for call in calls},
        "runs": len(calls),
        "score": round(fmean(graded)),
        "failed": sum(score < 80 for score in graded),
        "durations": [call["duration_seconds"] for call in calls],
        "cost": fmean(call["billing_total_cents"] for call in calls),
        "latency": (nearest_rank(gaps, 50), nearest_rank(gaps, 95)),
    }


# The sandbox's agents, as the card names them once ThunderPhone has named them.
NAMED = {
    12: "Support agent (agent 12)",
    13: "Support XL (agent 13)",
    14: "Sales agent (agent 14)",
}


def starred(cell: str) -> bool:
    return cell.endswith("★")


def plain(cell: str) -> str:
    return cell.removesuffix("★").strip()


async def test_a_suite_compared_across_three_agents(quick_stack: LocalStack) -> None:
    stack = quick_stack
    import_suite(stack, "refunds", CASES)
    confirmation = await confirm(stack, "compare refunds agent:12 agent:13 agent:14 --repeat 3")
    text = shown(confirmation)
    assert "Compare 3 targets: 18 test calls?" in text
    assert "6 per target × 3 targets = 18 test calls" in text
    assert "*Targets*  agent 12 · agent 13 · agent 14" in text
    assert "billed at 2× the normal rate" in text
    assert "refund-policy" in text and "human-handoff" in text
    assert batch_posts(stack) == [], "nothing is sent before consent"
    assert {row["status"] for row in rows(stack, "batches")} == {"proposed"}
    [compare] = rows(stack, "compares")
    assert (compare["suite"], compare["repeat"], compare["status"]) == ("refunds", 3, "proposed")

    await stack.user().click(confirmation, ids.START_COMPARE)
    card = await card_showing(stack, "🏁 Done", timeout=60)
    await stack.fake.wait_for(lambda: "Started 18 runs" in shown(confirmation) or None)

    # One batch request per target, the same prompts in the same order, all at once.
    posts = batch_posts(stack)
    assert [post.json["target_id"] for post in posts] == [12, 13, 14]
    prompts = [POLITE] * 3 + [HANDOFF] * 3
    for post in posts:
        assert post.json["scenario_prompts"] == prompts
        assert (post.json["run_count"], post.json["stagger_seconds"]) == (6, 0)
        assert post.json["consent_to_charge"] is True
    assert len(cards(stack)) == 1, "one card for the whole compare, no card per target"

    # Every figure on the card is what ThunderPhone recorded, computed as the card says.
    def finished_table() -> dict[str, list[str]] | None:
        table = table_rows(cards(stack)[0])
        return table if all(cells[0] != "…" for cells in table.values()) else None

    table = await stack.fake.wait_for(finished_table, timeout=15)
    assert list(table) == [NAMED[12], NAMED[13], NAMED[14]]
    ids_of = {label: target_id for target_id, label in NAMED.items()}
    expected = {target: expected_figures(stack, ids_of[target]) for target in table}
    assert [expected[t]["tier"] for t in table] == [{"spark"}, {"storm-base"}, {"bolt"}]
    assert [expected[t]["failed"] for t in table] == [1, 2, 1], "the flaky case alternates"
    for target, (tier, runs, score, durations, latency, cost, failed) in table.items():
        want = expected[target]
        assert tier == want["tier"].pop()
        assert runs == str(want["runs"]) == "6"
        assert plain(score) == f"{want['score']}%"
        p50, p95 = nearest_rank(want["durations"], 50), nearest_rank(want["durations"], 95)
        assert (p50, p95) == (48, 75)
        assert plain(durations) == f"{duration(int(p50))} / {duration(int(p95))}"
        lat50, lat95 = want["latency"]
        assert plain(latency) == f"{lat50 / 1000:.2f} / {lat95 / 1000:.2f} s"
        assert plain(cost) == money(want["cost"])
        assert plain(failed) == str(want["failed"])

    # ★ on the best of each column: ties share it, a column where all agree has none.
    marks = {
        column: [t for t, cells in table.items() if starred(cells[index])]
        for index, column in enumerate(["tier", "runs", "score", "duration", "latency", "cost"])
    }
    marks["failed"] = [t for t, cells in table.items() if starred(cells[6])]
    assert marks["score"] == [NAMED[12], NAMED[14]]
    assert marks["failed"] == [NAMED[12], NAMED[14]]
    assert marks["cost"] == [NAMED[12]], "spark bills least"
    assert marks["duration"] == [] and marks["tier"] == [] and marks["runs"] == []
    shown_latency = {t: tuple(round(v / 10) for v in expected[t]["latency"]) for t in table}
    fastest = min(shown_latency.values())
    alike = len(set(shown_latency.values())) == 1
    assert marks["latency"] == ([] if alike else [t for t in table if shown_latency[t] == fastest])

    # One reply per run in the card's thread, each headed by its target; the chart once.
    uploads = await stack.fake.wait_for(
        lambda: [m for m in thread(stack) if m.files] or None, timeout=30
    )
    replies = [m for m in thread(stack) if not m.files]
    assert len(replies) == 18
    headings = [m.blocks[0]["text"]["text"].split(" · ")[0] for m in replies]
    assert sorted(headings) == sorted(f"*{NAMED[n]}*" for n in (12, 13, 14) for _ in range(6))
    [upload_message] = uploads
    assert upload_message.thread_ts == card.ts
    [upload] = stack.fake.files.values()
    assert re.fullmatch(r"compare-refunds-[0-9a-f]{8}\.png", upload.filename)
    assert upload.completed and upload.content is not None
    assert upload.content.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", upload.content[16:24]) == (720, 500)
    assert upload.alt_txt is not None and "Support XL (agent 13) · storm-base" in upload.alt_txt
    assert upload_message.files[0]["mimetype"] == "image/png"
    assert "Score against duration" in upload_message.text
    await stack.fake.wait_for(lambda: rows(stack, "compares")[0]["chart_at"] or None)
    [compare] = rows(stack, "compares")
    assert (compare["status"], compare["chart_error"]) == ("launched", None)
    assert compare["finished_at"] is not None
    assert len(stack.fake.files) == 1 and len(cards(stack)) == 1


async def test_two_start_clicks_at_once_send_one_set(stack: LocalStack) -> None:
    confirmation = await confirm(stack, 'compare "Ask about opening hours." agent:12 agent:14')
    assert "1 per target × 2 targets = 2 test calls" in shown(confirmation)
    # Two of Maria's Slack clients (only the person who asked may press Start).
    maria, again = stack.user("U0MARIA"), stack.user("U0MARIA")
    await asyncio.gather(
        maria.click(confirmation, ids.START_COMPARE), again.click(confirmation, ids.START_COMPARE)
    )
    answers = await stack.fake.wait_for(
        lambda: (
            [c.args.get("text", "") for c in stack.fake.calls_to("response_url")]
            if len(stack.fake.calls_to("response_url")) == 2
            else None
        )
    )
    assert sum(text.startswith("Started 2 runs") for text in answers) == 1
    assert sum(text.startswith("Already started by") for text in answers) == 1
    assert [post.json["target_id"] for post in batch_posts(stack)] == [12, 14]
    assert len(rows(stack, "runs")) == 2 and len(cards(stack)) == 1


async def test_a_prompt_compared_on_a_number_and_an_agent(stack: LocalStack) -> None:
    prompt = "[score: 85] [duration: 30] Ask about opening hours."
    confirmation = await confirm(stack, f'compare "{prompt}" agent:14 number:34')
    await stack.user().click(confirmation, ids.START_COMPARE)
    card = await card_showing(stack, "0/2 runs done")
    await stack.fake.wait_for(lambda: len(stack.sandbox.runs) == 2 or None)
    assert "⚖️ Compare · “[score: 85] [duration: 30] Ask about opening hours.” · 2 targets" in (
        shown(card)
    )
    for run_id in sorted(stack.sandbox.runs):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    await card_showing(stack, "🏁 Done")
    table = await stack.fake.wait_for(
        lambda: (
            table_rows(cards(stack)[0])
            if "bolt" in shown(cards(stack)[0]) and "spark" in shown(cards(stack)[0])
            else None
        )
    )
    assert list(table) == [NAMED[14], "Main line (number 34)"]
    assert [cells[:3] for cells in table.values()] == [["bolt", "1", "85%"], ["spark", "1", "85%"]]
    number = table["Main line (number 34)"]
    assert plain(number[5]) == "$0.16" and starred(number[5])
    assert plain(table[NAMED[14]][5]) == "$0.20" and not starred(table[NAMED[14]][5])
    await stack.fake.wait_for(lambda: any(m.files for m in thread(stack)) or None)
    assert [bool(m.files) for m in thread(stack)] == [False, False, True], "the chart comes last"


async def test_cancel_and_refusals_send_nothing(stack: LocalStack) -> None:
    confirmation = await confirm(stack, 'compare "Ask about hours." agent:12 agent:14')
    stale = copy.deepcopy(confirmation)  # what another open Slack client still shows
    await stack.user().click(confirmation, ids.CANCEL_COMPARE)
    await stack.fake.wait_for(
        lambda: "Cancelled. Nothing was started" in shown(confirmation) or None
    )
    assert {row["status"] for row in rows(stack, "batches")} == {"cancelled"}
    await stack.user().click(stale, ids.START_COMPARE)
    await stack.fake.wait_for(lambda: "Cancelled by <@U0MARIA>" in shown(stale) or None)
    await stack.user().slash("alias set support agent:12")
    for text, problem in [
        ("compare nosuch agent:12 agent:14", 'There is no suite "nosuch"'),
        ('compare "Hi." support agent:12', "support and agent:12 are the same target (agent 12)"),
        ('compare "Hi." agent:12', "at least two targets"),
        ('compare "Hi." nowhere agent:12', 'I don\'t know the alias "nowhere"'),
    ]:
        reply = await stack.user().slash(text)
        assert reply.ephemeral is not None and problem in shown(reply.ephemeral), text
    assert batch_posts(stack) == [] and cards(stack) == []
    assert len(rows(stack, "compares")) == 1


# ---------------------------------------------------------------------------------------------
# The figures' rules


def test_percentiles_are_nearest_rank() -> None:
    values = [15, 20, 35, 40, 50]
    assert percentile(values, 5) == 15  # rank ceil(0.25) = 1
    assert percentile(values, 30) == 20  # rank ceil(1.5) = 2
    assert percentile(values, 40) == 20  # rank 2 exactly
    assert percentile(values, 50) == 35  # rank ceil(2.5) = 3
    assert percentile(values, 95) == 50
    assert percentile(values, 100) == 50
    assert percentile(list(reversed(values)), 50) == 35, "order does not matter"
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None
    twenty = list(range(1, 21))
    assert (percentile(twenty, 50), percentile(twenty, 95)) == (10, 19)
    for bad in (0, -1, 101):
        with pytest.raises(ValueError):
            percentile(values, bad)


def _turn(role: str, start: int | None, end: int | None, content: Any = "…") -> dict[str, Any]:
    entry: dict[str, Any] = {"role": role, "content": content}
    if start is not None:
        entry["start_ms"] = start
    if end is not None:
        entry["end_ms"] = end
    return entry


def test_latency_is_the_wait_from_a_caller_turn_to_the_agents_reply() -> None:
    transcript = [
        _turn("assistant", 0, 1500),  # the greeting answers nobody
        _turn("user", 2000, 3000),
        _turn("tool_call", 3100, 3100, {"name": "lookup_order", "arguments": {}}),
        _turn("tool_response", 3300, 3300, {"status": "shipped"}),
        _turn("assistant", 3800, 5000),  # 800 ms, the lookup included
        _turn("user", 5200, 6000),
        _turn("user", 6100, 6500),  # the caller goes on: the agent answers the last turn
        _turn("assistant", 6400, 7000),  # started before the caller finished: no wait
        _turn("user", 7500, None),  # no end: left out, and counted
        _turn("assistant", 8000, 9000),
        _turn("user", 9100, 9500),
        _turn("assistant", None, 11000),  # no start: left out, and counted
        _turn("user", 11500, 12000),
        _turn("agent", 12250, 13000, {"text": "Anything else?"}),  # other role names
        _turn("caller", 13100, 13200),
        _turn("assistant", 13500, 14000, ""),  # nothing said: not a turn
        _turn("assistant", 14100, 14500),
    ]
    gaps, left_out = response_latencies(transcript)
    assert gaps == [800, 0, 250, 900]
    assert left_out == 2
    assert response_latencies([]) == ([], 0)


def _figures(index: int, **changes: Any) -> TargetFigures:
    fields: dict[str, Any] = {
        "batch_id": f"b{index}",
        "target_type": "agent",
        "target_id": 12 + index,
        "label": f"agent {12 + index}",
        "name": "",
        "tier": "spark",
        "planned": 4,
        "started": 4,
        "done": 4,
        "grading": 0,
        "failures": 1,
        "spent_cents": 64,
        "mean_score": 0.86,
        "duration_p50": 48,
        "duration_p95": 70,
        "latency": Latency(800, 1400, replies=12),
        "mean_cost_cents": 16.0,
    }
    fields.update(changes)
    return TargetFigures(**fields)


def test_the_best_of_each_column_is_marked_and_ties_share_it() -> None:
    targets = [
        _figures(0, mean_score=0.861, duration_p50=48, duration_p95=80, failures=1),
        _figures(1, mean_score=0.858, duration_p50=48, duration_p95=70, mean_cost_cents=19.0),
        _figures(2, mean_score=0.81, latency=Latency(700, 2000, 9), failures=1, done=8),
    ]
    marks = best_marks(targets)
    assert marks["score"] == {0, 1}, "86% and 86% read the same"
    assert marks["duration"] == {1, 2}, "the same p50, then the lower p95"
    assert marks["latency"] == {2}, "the lower p50 wins"
    assert marks["cost"] == {0, 2}
    assert marks["failures"] == {2}, "a share of the runs: 1 of 8 beats 1 of 4"
    alike = best_marks([_figures(0), _figures(1)])
    assert all(not marked for marked in alike.values()), "no star where all agree"
    lonely = best_marks([_figures(0), _figures(1, mean_score=None, done=0, latency=Latency())])
    assert lonely["score"] == frozenset() and lonely["latency"] == frozenset()
    assert best_marks([_figures(0)])["cost"] == frozenset()


def test_target_figures_read_runs_grades_and_transcripts() -> None:
    batch = BatchRecord(
        id="b" * 32,
        team_id="T1",
        channel_id="C0QA",
        user_id="U0MARIA",
        target_type="agent",
        target_id=13,
        target_label="xl",
        status="partial",
        compare_id="c" * 32,
    )
    timed = [_turn("user", 0, 1000), _turn("assistant", 1300, 2000)]
    untimed = [_turn("user", None, None), _turn("assistant", None, None)]
    runs = [
        # (status, duration, cost, score, transcript)
        ("completed", 40, 16, 0.9, timed),
        ("completed", 90, 32, 0.7, untimed),
        ("completed", 60, 16, None, timed),  # not graded (yet)
        ("failed", None, None, None, None),  # failed before a call existed
        ("queued", None, None, None, None),  # not done: not counted
    ]
    report_rows = []
    for position, (status, seconds, cents, score, transcript) in enumerate(runs):
        item = BatchItem(batch_id=batch.id, position=position, prompt="p", run_id=100 + position)
        run = RunRecord(
            run_id=100 + position,
            team_id="T1",
            channel_id="C0QA",
            started_by="U0MARIA",
            target_type="agent",
            target_id=13,
            target_name="Support XL",
            status=status,
            call_id=900 + position if seconds else None,
            duration_seconds=seconds,
            cost_cents=cents,
        )
        grade = GradeRecord(call_id=900 + position, score=score) if score is not None else None
        outcome = outcome_of(run, grade, transcript)
        report_rows.append(Row(item, run, grade, outcome, Expected()))
    skipped = BatchItem(batch_id=batch.id, position=5, part=1, prompt="p")
    report_rows.append(Row(skipped, None, None, None, Expected()))
    report = BatchReport(
        batch,
        report_rows,
        [
            BatchPart(batch_id=batch.id, part=0, status="launched"),
            BatchPart(batch_id=batch.id, part=1, status="refused", error="balance is empty"),
        ],
        Progress(total=5, done=4, passed=1, failed=3, cost_cents=64),
        finished=False,
    )
    figures = target_figures(report, "storm-base")
    assert (figures.label, figures.name, figures.tier) == (
        "Support XL (agent 13)",
        "Support XL",
        "storm-base",
    )
    assert (figures.planned, figures.started, figures.done) == (6, 5, 4)
    assert figures.mean_score == pytest.approx(0.8)
    assert (figures.duration_p50, figures.duration_p95) == (60, 90)
    assert figures.mean_cost_cents == pytest.approx(64 / 3)
    assert figures.latency == Latency(300, 300, replies=2, left_out=1)
    assert (figures.failures, figures.spent_cents) == (3, 64)
    assert figures.points == ((40, 0.9), (90, 0.7))
    assert figures.not_started == ("balance is empty",)


@pytest.mark.parametrize("targets", [1, 3, 5])
def test_compare_charts_draw_as_png_without_warnings(targets: int) -> None:
    series = [
        CompareSeries(
            f"agent {12 + i} · storm-extra-with-ack",
            tuple((30 + 7 * j + 3 * i, 0.6 + 0.05 * ((i + j) % 7)) for j in range(6)),
        )
        for i in range(targets)
    ]
    series.append(CompareSeries("number 34 · spark", ()))  # no scored run: in the legend only
    png = compare_png(series, title="Score against duration · suite refunds")
    assert png.startswith(PNG_SIGNATURE)
    assert struct.unpack(">II", png[16:24]) == (720, 500)
    with pytest.raises(ValueError, match="at least one run"):
        compare_png([CompareSeries("agent 12", ())], title="nothing")


async def test_a_refused_target_is_told_and_the_others_run(stack: LocalStack) -> None:
    stack.sandbox.fail_next(
        "POST", "/v1/test-call-batches", 402, {"detail": "Insufficient balance."}, skip=1
    )
    prompt = "[score: 88] [duration: 40] Ask about opening hours."
    confirmation = await confirm(stack, f'compare "{prompt}" agent:12 agent:13 agent:14')
    await stack.user().click(confirmation, ids.START_COMPARE)
    await stack.fake.wait_for(lambda: "Started 2 of 3 runs" in shown(confirmation) or None)
    assert "agent 13: ThunderPhone says the balance is empty" in shown(confirmation)
    assert [post.json["target_id"] for post in batch_posts(stack)] == [12, 13, 14]
    card = await card_showing(stack, "Some runs on agent 13 did not start")
    assert "balance is empty" in shown(card)
    for run_id in sorted(stack.sandbox.runs):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    await card_showing(stack, "🏁 Done · 2 runs on 3 targets")
    await stack.fake.wait_for(lambda: any(m.files for m in thread(stack)) or None)
    table = await stack.fake.wait_for(
        lambda: (
            table_rows(cards(stack)[0])
            if table_rows(cards(stack)[0])["agent 13"][0] != "…"
            else None
        )
    )
    assert table["agent 13"][:3] == ["–", "0/1", "–"], "no call: no tier, no figures"
    assert table[NAMED[12]][0] == "spark" and table[NAMED[14]][0] == "bolt"
    assert [row["status"] for row in rows(stack, "compares")] == ["partial"]
    assert len(batch_posts(stack)) == 3, "the refused request is not sent again"


async def test_where_the_card_cannot_be_posted_nothing_starts(stack: LocalStack) -> None:
    stack.fake.archived_channels.add(CHANNEL)
    confirmation = await confirm(stack, 'compare "Ask about hours." agent:12 agent:14')
    await stack.user().click(confirmation, ids.START_COMPARE)
    await stack.fake.wait_for(
        lambda: "so I didn't start the compare" in shown(confirmation) or None
    )
    assert batch_posts(stack) == [] and cards(stack) == []
    assert {row["status"] for row in rows(stack, "batches")} == {"failed"}
    [compare] = rows(stack, "compares")
    assert compare["status"] == "failed" and compare["error"].startswith("cannot post")


def test_everything_a_person_or_agent_wrote_is_escaped_on_the_card() -> None:
    from bot.blocks.compare import compare_card
    from bot.compare import CompareView
    from storage.models import CompareRecord

    hostile = "<!channel> & <https://evil.example|click>"
    compare = CompareRecord(
        id="e" * 32, team_id="T1", channel_id="C0QA", user_id="U0MARIA", prompt=hostile
    )
    targets = [_figures(0, label=hostile, name=hostile), _figures(1, tier=hostile)]
    rendered = compare_card(CompareView(compare, targets, 1, True, best_marks(targets)))
    text = str(rendered["blocks"]) + rendered["text"]
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert len(rendered["blocks"]) <= 50
