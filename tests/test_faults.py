"""The fault run, short: batches started from Slack while webhooks are dropped, repeated and
shuffled, ThunderPhone and Slack calls fail, and the bot is killed once with SIGKILL. Every
run's result is posted exactly once, every card is right, nothing is launched twice and
nothing is left pending (`make faults` runs the long version)."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.fault_run import (
    BatchSent,
    FaultPlan,
    kill_points,
    passes,
    prompts_for,
    result_counts,
    run_faults,
    tally,
)
from bot.sandbox.slack import Message
from bot.sandbox.thunderphone import RecordedRequest


async def test_a_short_fault_run_posts_every_result_exactly_once(tmp_path: Path) -> None:
    plan = FaultPlan(
        batches=2, runs_per_batch=5, kills=1, kills_while_sending=0, channels=2, timeout=50
    )
    said: list[str] = []
    report = await run_faults(plan, tmp_path, said.append)

    assert report.problems == [], "\n".join(said + report.notes)
    assert report.line == "runs 10 · results posted 10 · duplicates 0 · lost 0 · relaunches 0"
    assert report.ok
    assert "killed the bot with SIGKILL and started it again (1)" in said
    assert "bot killed with SIGKILL and restarted: 1" in report.notes


def test_the_plan_kills_mid_way_and_mixes_outcomes() -> None:
    assert kill_points(FaultPlan()) == {2, 5}
    assert kill_points(FaultPlan(batches=2, kills=1)) == {0}
    prompts = prompts_for(0, 20)
    assert len(set(prompts)) == 20
    assert sum(passes(p) for p in prompts) == 16, "two calls fail and two score low"


def reply(prompt: str, ts: str) -> Message:
    return Message("C0F", ts, "U0THUNDER", f"“{prompt}”: ✅ Passed", thread_ts="1.000001")


def create(name: str) -> RecordedRequest:
    return RecordedRequest("POST", "/v1/test-call-batches", {}, {}, {"name": name})


def test_the_counts_see_a_repeated_a_missing_and_a_relaunched_result() -> None:
    prompts = ["[score: 90] One.", "[score: 91] Two.", "[score: 92] Three."]
    sent = [BatchSent("C0F", prompts, card_ts="1.000001")]
    runs = [{"id": 7110 + n, "scenario_prompt": p} for n, p in enumerate(prompts)]
    replies = {
        "C0F": [reply(prompts[0], "2.1"), reply(prompts[0], "2.2"), reply(prompts[1], "2.3")]
    }

    counts = result_counts(runs, sent, replies)
    report = tally(counts, [create("thunderbot b1 part 1"), create("thunderbot b1 part 1")])

    assert counts == {7110: 2, 7111: 1, 7112: 0}
    assert report.line == "runs 3 · results posted 3 · duplicates 1 · lost 1 · relaunches 1"
    assert not report.ok, "posted equals runs, yet one is repeated and one is missing"
