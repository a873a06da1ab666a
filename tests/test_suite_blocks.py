"""What a suite run shows: the batch progress line, the regression summary and a run's
reasons, accepted by slack_sdk's models, within Slack's limits, and escaped."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block

from bot.blocks.suites import (
    baseline_label,
    change_entry,
    progress_line,
    regression_summary,
)
from bot.verdicts import (
    CaseChange,
    Counts,
    Divergence,
    Progress,
    Shift,
    Verdict,
    summary,
)

LABEL = baseline_label("run 41", "U0LI", "2026-11-20T15:30:00+00:00")


def change(case: str = "refund-policy", **fields: Any) -> CaseChange:
    values: dict[str, Any] = {
        "case": case,
        "verdict": Verdict.PASSED,
        "runs": 1,
        "passed_runs": 1,
        "baseline_runs": 1,
        "baseline_passed": True,
        "score": Shift(0.9, 0.9),
        "duration": Shift(54, 54),
        "cost": Shift(16, 16),
    }
    values.update(fields)
    return CaseChange(**values)


REGRESSED = change(
    verdict=Verdict.REGRESSED,
    passed_runs=0,
    score=Shift(0.91, 0.62, True),
    divergence=Divergence(
        turn=3,
        baseline_role="assistant",
        baseline="Refunds go back to the card in 3 to 5 days.",
        current_role="assistant",
        current="I'm not able to help with refunds.",
    ),
)
FIXED = change(
    "human-handoff", verdict=Verdict.FIXED, baseline_passed=False, score=Shift(0.55, 0.88, True)
)
FLAKY = change("off-topic", verdict=Verdict.FLAKY, runs=3, passed_runs=2)


def valid(payload: dict[str, Any]) -> dict[str, Any]:
    """Every block parses and validates; Slack's limits hold; a fallback is set."""
    assert payload["text"]
    assert len(payload["blocks"]) <= 50
    for raw in payload["blocks"]:
        block = Block.parse(raw)
        assert block is not None
        block.validate_json()
        if raw["type"] == "section":
            assert len(raw["text"]["text"]) <= 3000
    return payload


def visible(payload: dict[str, Any]) -> str:
    texts = []
    for block in payload["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(element["text"] for element in block["elements"])
    return "\n".join(texts)


# --- progress line ---------------------------------------------------------------------------


def test_progress_line_as_on_the_card() -> None:
    line = progress_line(
        Progress(total=5, done=3, passed=2, failed=1, cost_cents=48, avg_score=0.86)
    )
    assert line == "███░░ 3/5 · 2 passed · 1 failed · $0.48 so far · avg 86%"


def test_progress_line_before_anything_is_done_and_while_grading() -> None:
    assert progress_line(Progress(total=5)) == "░░░░░ 0/5 · 0 passed · 0 failed"
    assert progress_line(Progress(total=0)) == "░░░░░ 0/0 · 0 passed · 0 failed"
    line = progress_line(Progress(total=2, done=2, passed=1, grading=1, cost_cents=30))
    assert line == "█████ 2/2 · 1 passed · 0 failed · 1 grading · $0.30 so far"


@pytest.mark.parametrize(
    ("done", "bar"), [(0, "░░░░░"), (19, "░░░░░"), (20, "█░░░░"), (99, "████░"), (100, "█████")]
)
def test_the_bar_scales_to_a_hundred_runs(done: int, bar: str) -> None:
    assert progress_line(Progress(total=100, done=done)).startswith(f"{bar} {done}/100 ")


@given(st.integers(0, 100), st.integers(0, 100))
def test_the_bar_is_five_cells_and_full_only_when_done(done: int, extra: int) -> None:
    total = done + extra
    bar = progress_line(Progress(total=total, done=done)).split(" ")[0]
    assert len(bar) == 5 and set(bar) <= {"█", "░"}
    assert (bar == "█████") == (total > 0 and done == total)


# --- regression summary --------------------------------------------------------------------


def test_regression_summary_as_in_the_sketch() -> None:
    steady = [change(f"case-{n}") for n in range(18)]
    changes = [*steady, FLAKY, FIXED, REGRESSED]
    payload = valid(regression_summary(LABEL, changes, summary(changes)))
    text = visible(payload)
    lines = text.splitlines()
    assert lines[0] == (
        "*Compared with the baseline* (run 41, blessed by <@U0LI> on"
        " <!date^1795188600^{date_short}|Nov 20>): 1 regressed · 1 fixed · 1 flaky · 18 unchanged"
    )
    assert lines[1] == ("❌ *refund-policy*: passed → failed · 91% → 62% · diverged at turn 3")
    assert lines[2] == ">_baseline_   *Agent:*  Refunds go back to the card in 3 to 5 days."
    assert lines[3] == ">_now_          *Agent:*  I'm not able to help with refunds."
    assert lines[4] == "✅ *human-handoff*: failed → passed · 55% → 88%"
    assert lines[5] == "〰️ *off-topic*: flaky (2 of 3 passed), not counted as a regression"
    assert len(lines) == 6  # unchanged cases are not listed
    assert payload["text"] == (
        "Compared with the baseline: 1 regressed · 1 fixed · 1 flaky · 18 unchanged"
        " · regressed: refund-policy"
    )


def test_score_duration_and_cost_shifts_are_listed() -> None:
    slower = change(
        "order-status",
        score=Shift(0.93, 0.78, True),
        duration=Shift(40, 70.4, True),
        cost=Shift(12, 20, True),
        divergence=Divergence(2, "user", "Where is it?", "user", "Cancel it."),
    )
    better = change("greeting", score=Shift(0.7, 0.9, True))
    cheaper = change("delays", cost=Shift(20, 10, True))
    entry = change_entry(slower)
    assert entry.splitlines()[0] == (
        "📉 *order-status*: passed · 93% → 78% · duration 0:40 → 1:10 · cost $0.12 → $0.20"
        " · diverged at turn 2"
    )
    assert "*Caller:*  Cancel it." in entry
    assert change_entry(better) == "📈 *greeting*: passed · 70% → 90%"
    assert change_entry(cheaper) == "🔸 *delays*: passed · cost $0.20 → $0.10"


def test_a_better_case_shows_no_diff() -> None:
    diverged = Divergence(1, "assistant", "Hi", "assistant", "Good day")
    assert "\n" not in change_entry(change(verdict=Verdict.FIXED, divergence=diverged))


def test_a_flip_of_a_case_flaky_before() -> None:
    entry = change_entry(change("c", verdict=Verdict.FLAKY, passed_runs=0))
    assert entry == "〰️ *c*: flaky (0 of 1 passed, flaky before), not counted as a regression"
    entry = change_entry(change("c", verdict=Verdict.FLAKY, baseline_passed=False))
    assert entry == "〰️ *c*: flaky (1 of 1 passed, flaky before)"


def test_a_call_that_ended_before_the_turn() -> None:
    ended = Divergence(5, "assistant", "Anything else?", "", "")
    entry = change_entry(change(verdict=Verdict.REGRESSED, divergence=ended))
    assert ">_now_          _(the call had already ended)_" in entry


def test_nothing_changed() -> None:
    changes = [change(), change("new-case", baseline_runs=0, baseline_passed=None)]
    payload = valid(regression_summary(LABEL, changes, summary(changes)))
    assert visible(payload).endswith(
        "0 regressed · 1 unchanged · 1 new\nNo case changed against the baseline."
    )


def test_names_and_transcript_text_are_escaped() -> None:
    nasty = change(
        "<!channel> & <@U1>",
        verdict=Verdict.REGRESSED,
        divergence=Divergence(1, "assistant", "a < b & c > d", "<weird>", "<https://x|click>"),
    )
    changes = [nasty]
    payload = valid(regression_summary(baseline_label("run <1> & co"), changes, summary(changes)))
    text = visible(payload)
    assert "(run &lt;1&gt; &amp; co)" in text
    assert "*&lt;!channel&gt; &amp; &lt;@U1&gt;*" in text
    assert "a &lt; b &amp; c &gt; d" in text
    assert "*&lt;weird&gt;:*  &lt;https://x|click&gt;" in text
    assert "<!channel>" not in payload["text"] and "&lt;!channel&gt;" in payload["text"]
    assert "<@U1>" not in text


def test_a_long_summary_keeps_to_slacks_limits_and_says_how_many_more() -> None:
    diverged = Divergence(3, "assistant", "x" * 500, "assistant", "y" * 500)
    changes = [
        change(f"case-{n:03}-" + "n" * 100, verdict=Verdict.REGRESSED, divergence=diverged)
        for n in range(400)
    ]
    payload = valid(regression_summary(LABEL, changes, summary(changes)))
    assert len(payload["blocks"]) == 50
    last = payload["blocks"][-1]
    assert last["type"] == "context"
    more = int(last["elements"][0]["text"].split()[1])
    shown = visible(payload).count("❌ *case-")
    assert shown + more == 400 and more > 0
    assert last["elements"][0]["text"] == f"and {more} more changed cases"


def test_without_a_label() -> None:
    payload = valid(regression_summary("", [REGRESSED], Counts(cases=1, failed=1, regressed=1)))
    assert visible(payload).startswith("*Compared with the baseline*: 1 regressed · 0 unchanged")


def test_baseline_label() -> None:
    assert baseline_label("run 41") == "run 41"
    assert baseline_label("run 41", "U0LI") == "run 41, blessed by <@U0LI>"


# --- reasons of one run ----------------------------------------------------------------------
