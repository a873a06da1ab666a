"""The fault run, short: batches started from Slack while webhooks are dropped, repeated and
shuffled, ThunderPhone and Slack calls fail, and the bot is killed once with SIGKILL. Every
run's result is posted exactly once, every card is right, nothing is launched twice and
nothing is left pending (`make faults` runs the long version)."""

from __future__ import annotations

from pathlib import Path

from bot.sandbox.fault_run import FaultPlan, kill_points, passes, prompts_for, run_faults


async def test_a_short_fault_run_posts_every_result_exactly_once(tmp_path: Path) -> None:
    plan = FaultPlan(batches=2, runs_per_batch=5, kills=1, channels=2, timeout=50)
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
