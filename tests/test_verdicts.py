"""The rules of regression testing, tested directly: checks and their reasons, verdicts,
comparison with a baseline, and a batch's progress."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.expectations import Expected, ToolCall, parse_expected
from bot.verdicts import (
    Check,
    Counts,
    ResultKind,
    ResultVerdict,
    RunOutcome,
    Verdict,
    case_verdict,
    check,
    compare,
    divergence,
    outcome_of,
    progress,
    result_verdict,
    summary,
    tool_calls,
)
from storage.models import GradeRecord, RunRecord

THRESHOLD = 0.8
TRANSCRIPT: tuple[dict[str, Any], ...] = (
    {"role": "assistant", "content": "Thanks for calling Acme Freight, how can I help?"},
    {"role": "user", "content": "What is your REFUND policy?"},
    {"role": "tool_call", "content": {"name": "lookup_order", "arguments": {"order": "12345"}}},
    {"role": "tool_response", "content": {"status": "shipped", "note": "cancel"}},
    {"role": "assistant", "content": "Refunds go back to the card in 3 to 5 days."},
    {"role": "user", "content": "Thanks, bye."},
)


def run(**changes: Any) -> RunOutcome:
    fields: dict[str, Any] = {
        "status": "completed",
        "score": 0.91,
        "call_outcome": "success",
        "duration_seconds": 54,
        "cost_cents": 16,
        "transcript": TRANSCRIPT,
    }
    fields.update(changes)
    return RunOutcome(**fields)


def reasons(expected: Any, outcome: RunOutcome | None = None) -> tuple[str, ...]:
    result = check(parse_expected(expected), outcome or run(), THRESHOLD)
    assert result.passed == (not result.reasons)
    return result.reasons


# --- one verdict per result ------------------------------------------------------------------


def test_a_result_has_one_verdict() -> None:
    plain = Expected()
    assert result_verdict(plain, run(), THRESHOLD) == ResultVerdict(ResultKind.PASSED)
    low = result_verdict(plain, run(score=0.41), THRESHOLD)
    assert low == ResultVerdict(ResultKind.FAILED, ("score 41% < 80%",))
    # The grader said "success", but the score decides: one verdict, not two.
    assert result_verdict(plain, run(score=0.5, call_outcome="success"), THRESHOLD).kind == (
        ResultKind.FAILED
    )
    waiting = run(score=None, call_outcome="", grade_status="")
    assert result_verdict(plain, waiting, THRESHOLD) == ResultVerdict(ResultKind.GRADING)
    ended = run(score=None, call_outcome="", grade_status="failed")
    assert result_verdict(plain, ended, THRESHOLD) == ResultVerdict(ResultKind.NOT_GRADED)
    broken = run(status="failed", score=None, error_message="SIP 480")
    assert result_verdict(plain, broken, THRESHOLD) == ResultVerdict(
        ResultKind.FAILED, ("the call failed: SIP 480",)
    )


def test_a_suite_case_is_judged_by_its_expectation() -> None:
    wants_failure = parse_expected({"status": "failed"})
    broken = run(status="failed", score=None)
    assert result_verdict(wants_failure, broken, THRESHOLD).kind == ResultKind.PASSED
    phrase = parse_expected({"transcript_contains": ["refund"]})
    # Nothing it checks needs a grade, so its verdict does not wait for one.
    assert result_verdict(phrase, run(score=None, grade_status=""), THRESHOLD).kind == (
        ResultKind.PASSED
    )
    outcome = parse_expected({"call_outcome": "resolved"})
    assert result_verdict(outcome, run(score=None, grade_status=""), THRESHOLD).kind == (
        ResultKind.GRADING
    )
    assert result_verdict(outcome, run(), THRESHOLD) == ResultVerdict(
        ResultKind.FAILED, ("outcome success, expected resolved",)
    )


# --- check: one rule at a time ----------------------------------------------------------------


def test_a_run_meeting_every_check_passes() -> None:
    expected = {
        "status": "completed",
        "call_outcome": "SUCCESS",
        "min_score": 0.9,
        "min_duration_seconds": 54,
        "max_duration_seconds": 54,
        "transcript_contains": ["refund policy", "3 TO 5 DAYS"],
        "transcript_excludes": ["cancel"],
        "tools_called": [{"name": "lookup_order", "arguments": {"order": 12345}}],
        "tools_not_called": ["transfer_call"],
    }
    assert check(parse_expected(expected), run(), THRESHOLD) == Check(True, ())


def test_status_is_compared_case_insensitively() -> None:
    assert reasons({"status": "completed"}, run(status="Completed")) == ()
    assert reasons({"status": "failed"}, run(status="FAILED", score=None)) == ()


def test_a_failed_run_fails_every_case_that_does_not_expect_a_failure() -> None:
    failed = run(status="failed", score=None, error_message="the agent never answered")
    for expected in (None, "success", "a note", {"transcript_contains": ["refund"]}):
        assert reasons(expected, failed) == ("status failed, expected completed",)
    assert reasons({"status": "failed"}, failed) == ()


def test_a_completed_run_fails_a_case_expecting_a_failure() -> None:
    assert reasons({"status": "failed"}) == ("status completed, expected failed",)


def test_an_unfinished_run_does_not_pass() -> None:
    assert reasons(None, run(status="in_progress")) == ("status in progress, expected completed",)


def test_call_outcome_is_compared_case_insensitively() -> None:
    assert reasons("success", run(call_outcome="Success")) == ()
    assert reasons("success", run(call_outcome="failure")) == ("outcome failure, expected success",)
    assert reasons({"call_outcome": "Partial"}, run(call_outcome="")) == (
        "no outcome, expected partial",
    )


def test_min_score_is_checked_against_the_normalised_score() -> None:
    assert reasons({"min_score": 80}, run(score=0.64)) == ("score 64% < 80%",)
    assert reasons({"min_score": 0.8}, run(score=0.8)) == ()
    assert reasons({"min_score": 0.8}, run(score=None)) == ("no score",)


def test_a_score_just_under_the_minimum_does_not_read_as_equal() -> None:
    assert reasons({"min_score": 0.8}, run(score=0.799)) == ("score 79.9% < 80.0%",)


def test_durations_are_inclusive() -> None:
    bounds = {"min_duration_seconds": 30, "max_duration_seconds": 120}
    for seconds in (30, 54, 120):
        assert reasons(bounds, run(duration_seconds=seconds)) == ()
    assert reasons(bounds, run(duration_seconds=12)) == ("lasted 0:12, expected at least 0:30",)
    assert reasons(bounds, run(duration_seconds=185)) == ("lasted 3:05, expected at most 2:00",)
    assert reasons(bounds, run(duration_seconds=None)) == (
        "duration unknown, expected at least 0:30 and at most 2:00",
    )


def test_transcript_phrases_are_found_in_spoken_turns_only() -> None:
    assert reasons({"transcript_contains": ["refund", "voucher"]}) == (
        'transcript lacks "voucher"',
    )
    # "cancel" is only in a tool result, "lookup_order" only in a tool call: not spoken.
    assert reasons({"transcript_contains": ["lookup_order"]}) == (
        'transcript lacks "lookup_order"',
    )
    assert reasons({"transcript_excludes": ["cancel", "Refunds  go"]}) == (
        'transcript has "Refunds  go"',
    )


def test_agent_and_caller_roles_count_as_speech() -> None:
    transcript = [{"role": "agent", "content": "Hello"}, {"role": "Caller", "content": "REFUND"}]
    assert reasons({"transcript_contains": ["hello", "refund"]}, run(transcript=transcript)) == ()


def test_a_tool_that_was_not_called() -> None:
    assert reasons({"tools_called": ["transfer_call"]}) == ("transfer_call was not called",)


def test_tool_arguments_compare_as_text() -> None:
    assert (
        reasons({"tools_called": [{"name": "lookup_order", "arguments": {"order": 12345}}]}) == ()
    )
    assert reasons(
        {"tools_called": [{"name": "lookup_order", "arguments": {"order": 54321, "zip": 2139}}]}
    ) == ("lookup_order was called without order=54321, zip=2139 (got order=12345)",)
    assert reasons({"tools_called": [{"name": "lookup_order", "arguments": {"zip": "02139"}}]}) == (
        "lookup_order was called without zip=02139",
    )


def test_any_call_of_the_tool_may_carry_the_arguments() -> None:
    transcript = [
        {"role": "tool_call", "content": {"name": "lookup_order", "arguments": {"order": "1"}}},
        {"role": "tool_call", "content": {"name": "lookup_order", "arguments": {"order": 2}}},
    ]
    expected = {"tools_called": [{"name": "lookup_order", "arguments": {"order": "2"}}]}
    assert reasons(expected, run(transcript=transcript)) == ()


def test_tool_call_content_may_arrive_as_json_text() -> None:
    content = json.dumps({"name": "lookup_order", "arguments": json.dumps({"order": 12345})})
    transcript = [{"role": "tool_call", "content": content}]
    assert tool_calls(transcript) == [("lookup_order", {"order": 12345})]
    expected = {"tools_called": [{"name": "lookup_order", "arguments": {"order": "12345"}}]}
    assert reasons(expected, run(transcript=transcript)) == ()
    assert tool_calls([{"role": "tool_call", "content": "not json"}]) == []


def test_a_tool_that_must_not_be_called() -> None:
    assert reasons({"tools_not_called": ["lookup_order", "transfer_call"]}) == (
        "lookup_order was called",
    )


def test_every_failed_check_gives_its_reason() -> None:
    expected = {
        "call_outcome": "success",
        "min_score": 0.8,
        "transcript_contains": ["voucher"],
        "tools_not_called": ["lookup_order"],
    }
    assert reasons(expected, run(score=0.5, call_outcome="failure")) == (
        "outcome failure, expected success",
        "score 50% < 80%",
        'transcript lacks "voucher"',
        "lookup_order was called",
    )


def test_nothing_checkable_passes_at_or_above_the_threshold() -> None:
    nothing: tuple[Any, ...] = (None, "a note for people, not checked", {})
    for expected in nothing:
        assert not parse_expected(expected).checkable
        assert reasons(expected, run(score=0.8)) == ()
        assert reasons(expected, run(score=0.64)) == ("score 64% < 80%",)
        assert reasons(expected, run(score=None)) == ("not graded",)


def test_checkable_expectations_replace_the_threshold() -> None:
    assert reasons("success", run(score=0.2)) == ()
    assert reasons({"transcript_contains": ["refund"]}, run(score=None)) == ()


def test_outcome_of_a_stored_run() -> None:
    record = RunRecord(
        run_id=7,
        team_id="T1",
        channel_id="C1",
        started_by="U1",
        target_type="agent",
        target_id=12,
        scenario_prompt="hi",
        status="completed",
        call_id=99,
        duration_seconds=54,
        cost_cents=16,
    )
    grade = GradeRecord(call_id=99, score=0.92, call_outcome="success", status="completed")
    outcome = outcome_of(record, grade, list(TRANSCRIPT))
    assert outcome == run(score=0.92, run_id=7, grade_status="completed")
    assert outcome_of(record).awaiting_grade


# --- check: properties ---------------------------------------------------------------------

_words = st.text(alphabet="abcdefghij XYZ,.!?'", min_size=1, max_size=40)
_speech = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "agent", "caller"]), "content": _words}
)
_values = st.one_of(st.integers(), st.text(max_size=8), st.booleans())
_call = st.fixed_dictionaries(
    {
        "role": st.just("tool_call"),
        "content": st.fixed_dictionaries(
            {
                "name": st.sampled_from(["lookup_order", "refund", "transfer_call"]),
                "arguments": st.dictionaries(st.sampled_from("abc"), _values, max_size=3),
            }
        ),
    }
)
_outcomes = st.builds(
    RunOutcome,
    status=st.sampled_from(["completed", "failed"]),
    score=st.one_of(st.none(), st.floats(0, 1)),
    call_outcome=st.sampled_from(["", "success", "failure", "partial"]),
    duration_seconds=st.one_of(st.none(), st.integers(0, 600)),
    cost_cents=st.one_of(st.none(), st.integers(0, 500)),
    transcript=st.lists(st.one_of(_speech, _call), max_size=8),
)


@given(outcome=_outcomes, data=st.data())
def test_a_run_passes_an_expectation_built_from_itself(outcome: RunOutcome, data: Any) -> None:
    raw: dict[str, Any] = {"status": outcome.status}
    if outcome.call_outcome:
        raw["call_outcome"] = outcome.call_outcome.upper()
    if outcome.score is not None:
        raw["min_score"] = outcome.score
    if outcome.duration_seconds is not None:
        raw["min_duration_seconds"] = raw["max_duration_seconds"] = outcome.duration_seconds
    spoken = [e["content"] for e in outcome.transcript if e["role"] != "tool_call"]
    phrases = []
    for text in spoken:
        start = data.draw(st.integers(0, len(text) - 1))
        end = data.draw(st.integers(start + 1, len(text)))
        if text[start:end].strip():
            phrases.append(text[start:end].swapcase())
    if phrases:
        raw["transcript_contains"] = phrases
    calls = [e["content"] for e in outcome.transcript if e["role"] == "tool_call"]
    if calls:
        raw["tools_called"] = calls
    called = {call["name"] for call in calls}
    raw["tools_not_called"] = [n for n in ("lookup_order", "transfer_call") if n not in called]
    assert check(parse_expected(raw), outcome, THRESHOLD) == Check(True, ())


# --- verdicts ------------------------------------------------------------------------------

PASS, FAIL = Check(True), Check(False, ("score 50% < 80%",))


@pytest.mark.parametrize(
    ("checks", "baseline_passed", "flaky_before", "verdict"),
    [
        ([PASS], None, False, Verdict.PASSED),
        ([FAIL, FAIL], None, False, Verdict.FAILED),
        ([PASS, FAIL, PASS], None, False, Verdict.FLAKY),
        ([PASS, FAIL], True, False, Verdict.FLAKY),
        ([PASS, FAIL], False, True, Verdict.FLAKY),
        ([PASS, PASS], True, False, Verdict.PASSED),
        ([FAIL], False, False, Verdict.FAILED),
        ([PASS], False, False, Verdict.FIXED),
        ([FAIL, FAIL], True, False, Verdict.REGRESSED),
        # A single flip of a case that has been flaky before is flaky, either way round.
        ([FAIL], True, True, Verdict.FLAKY),
        ([PASS], False, True, Verdict.FLAKY),
        # Flaky history does not matter while the case behaves as in its baseline.
        ([PASS], True, True, Verdict.PASSED),
        ([FAIL], False, True, Verdict.FAILED),
    ],
)
def test_case_verdict(
    checks: list[Check], baseline_passed: bool | None, flaky_before: bool, verdict: Verdict
) -> None:
    got = case_verdict(checks, baseline_passed=baseline_passed, flaky_before=flaky_before)
    assert got == verdict
    assert got == verdict.value  # reads as its name


def test_a_flaky_case_never_counts_as_a_regression() -> None:
    flaky = compare(
        "off-topic",
        [run(), run(score=0.5), run()],
        [run(), run()],
        expected=Expected(),
        threshold=THRESHOLD,
    )
    assert flaky.verdict is Verdict.FLAKY
    assert summary([flaky]) == Counts(cases=1, flaky=1)


def test_a_case_without_runs_has_no_verdict() -> None:
    with pytest.raises(ValueError, match="at least one run"):
        case_verdict([], baseline_passed=None, flaky_before=False)


@given(st.lists(st.booleans(), min_size=1), st.one_of(st.none(), st.booleans()))
def test_without_flaky_history_a_verdict_is_flaky_iff_the_runs_are_mixed(
    results: list[bool], baseline_passed: bool | None
) -> None:
    checks = [PASS if passed else FAIL for passed in results]
    verdict = case_verdict(checks, baseline_passed=baseline_passed, flaky_before=False)
    assert (verdict is Verdict.FLAKY) == (len(set(results)) > 1)


@given(st.lists(st.booleans(), min_size=1), st.one_of(st.none(), st.booleans()), st.booleans())
def test_a_regression_is_never_flaky_history_nor_a_mixed_run(
    results: list[bool], baseline_passed: bool | None, flaky_before: bool
) -> None:
    checks = [PASS if passed else FAIL for passed in results]
    verdict = case_verdict(checks, baseline_passed=baseline_passed, flaky_before=flaky_before)
    if verdict is Verdict.REGRESSED:
        assert not flaky_before and baseline_passed and not any(results)


# --- compare -------------------------------------------------------------------------------


def changed(current: list[RunOutcome], baseline: list[RunOutcome], **options: Any) -> Any:
    return compare(
        "refund-policy", current, baseline, expected=Expected(), threshold=0.5, **options
    )


def test_compare_a_regression() -> None:
    now = run(
        score=0.3,
        transcript=[
            TRANSCRIPT[0],
            TRANSCRIPT[1],
            TRANSCRIPT[2],
            {"role": "assistant", "content": "I'm not able to help with refunds."},
        ],
    )
    change = changed([now], [run(), run(score=0.89)])
    assert change.verdict is Verdict.REGRESSED
    assert (change.runs, change.passed_runs, change.baseline_runs) == (1, 0, 2)
    assert change.baseline_passed is True
    assert change.score.before == pytest.approx(0.9)
    assert change.score.now == 0.3
    assert change.score.changed and change.score.direction == -1
    assert not change.duration.changed and not change.cost.changed
    assert change.divergence is not None
    assert change.divergence.turn == 4  # as the transcript view numbers it, tool call included
    assert change.divergence.baseline == "Refunds go back to the card in 3 to 5 days."
    assert change.divergence.current == "I'm not able to help with refunds."
    assert change.divergence.baseline_role == change.divergence.current_role == "assistant"
    assert change.changed


@pytest.mark.parametrize(
    ("before", "now", "moved"),
    [(0.80, 0.90, False), (0.90, 0.80, False), (0.80, 0.91, True), (0.91, 0.80, True)],
)
def test_a_score_moves_beyond_the_tolerance_only(before: float, now: float, moved: bool) -> None:
    change = changed([run(score=now)], [run(score=before)])
    assert change.score.changed is moved
    assert change.changed is moved
    assert change.verdict is Verdict.PASSED


def test_scores_compare_by_their_means_and_a_missing_score_is_no_change() -> None:
    change = changed([run(score=0.7), run(score=0.9)], [run(score=0.9), run(score=None)])
    assert (change.score.before, change.score.now) == (0.9, pytest.approx(0.8))
    assert not change.score.changed
    assert not changed([run(score=None)], [run()]).score.changed
    assert changed([run()], [run()], score_tolerance=0).score.changed is False


@pytest.mark.parametrize(
    ("before", "now", "moved"),
    [(100, 125, False), (100, 75, False), (100, 126, True), (100, 74, True), (0, 0, False)],
)
def test_duration_and_cost_move_beyond_a_quarter(before: int, now: int, moved: bool) -> None:
    change = changed(
        [run(duration_seconds=now, cost_cents=now)],
        [run(duration_seconds=before, cost_cents=before)],
    )
    assert change.duration.changed is moved
    assert change.cost.changed is moved


def test_duration_and_cost_are_none_safe() -> None:
    change = changed(
        [run(duration_seconds=None, cost_cents=10), run(duration_seconds=None, cost_cents=None)],
        [run(duration_seconds=60, cost_cents=None)],
    )
    assert (change.duration.before, change.duration.now, change.duration.changed) == (
        60,
        None,
        False,
    )
    assert (change.cost.before, change.cost.now, change.cost.changed) == (None, 10, False)
    assert changed([run(cost_cents=5)], [run(cost_cents=0)], change_ratio=0.25).cost.changed


def test_a_new_case_and_a_mixed_baseline() -> None:
    new = changed([run(score=0.1)], [])
    assert (new.verdict, new.baseline_passed, new.baseline_runs) == (Verdict.FAILED, None, 0)
    assert new.divergence is None
    # A baseline that was itself mixed gives nothing to regress from or be fixed against.
    mixed = changed([run(score=0.1)], [run(), run(score=0.1)])
    assert (mixed.verdict, mixed.baseline_passed) == (Verdict.FAILED, None)
    assert changed([run()], [run(), run(score=0.1)]).verdict is Verdict.PASSED


def test_both_sides_are_held_against_todays_expectation() -> None:
    expected = parse_expected({"transcript_contains": ["voucher"]})
    change = compare("c", [run()], [run()], expected=expected, threshold=THRESHOLD)
    assert change.verdict is Verdict.FAILED  # failed before too: unchanged, not regressed


def test_reworded_turns_do_not_diverge() -> None:
    baseline = [
        {"role": "assistant", "content": "Thanks for calling Acme Freight, how can I help?"}
    ]
    current = [{"role": "agent", "content": "thanks for calling acme freight - how can i help you"}]
    assert divergence(baseline, current) is None


def test_divergence_where_the_speaker_changes_or_a_call_ends_early() -> None:
    baseline = [{"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Hi"}]
    other = [{"role": "assistant", "content": "Hello"}, {"role": "assistant", "content": "Hi"}]
    found = divergence(baseline, other)
    assert found is not None and (found.turn, found.current_role) == (2, "assistant")
    ended = divergence(baseline, baseline[:1])
    assert ended is not None
    assert (ended.turn, ended.baseline, ended.current, ended.current_role) == (2, "Hi", "", "")
    longer = divergence(baseline[:1], baseline)
    assert longer is not None and (longer.turn, longer.baseline, longer.current) == (2, "", "Hi")
    assert divergence([], baseline) is None


def test_divergence_texts_are_trimmed() -> None:
    found = divergence(
        [{"role": "user", "content": "short"}],
        [{"role": "user", "content": "word " * 200}],
    )
    assert found is not None
    assert len(found.current) <= 200 and found.current.endswith("…")


def test_summary_counts() -> None:
    steady = changed([run()], [run()])
    changes = [
        changed([run(score=0.1)], [run()]),  # regressed
        changed([run()], [run(score=0.1)]),  # fixed
        changed([run(), run(score=0.1)], [run()]),  # flaky
        steady,
        changed([run(score=0.1)], [run(score=0.1)]),  # still failing: unchanged
        changed([run()], []),  # new
    ]
    assert [c.verdict for c in changes] == [
        "regressed",
        "fixed",
        "flaky",
        "passed",
        "failed",
        "passed",
    ]
    assert summary(changes) == Counts(
        cases=6, passed=3, failed=2, flaky=1, regressed=1, fixed=1, unchanged=2, new=1
    )
    assert not steady.changed


# --- progress ------------------------------------------------------------------------------


def test_progress_of_a_batch() -> None:
    outcomes = [
        run(score=0.9, cost_cents=16),
        run(score=0.82, cost_cents=16),
        run(score=0.6, cost_cents=16),
        None,
        run(status="in_progress", score=None, cost_cents=None),
    ]
    tally = progress(outcomes, 5, THRESHOLD)
    assert (tally.total, tally.done, tally.passed, tally.failed, tally.grading) == (5, 3, 2, 1, 0)
    assert tally.cost_cents == 48
    assert tally.avg_score == pytest.approx(0.7733, abs=1e-4)


def test_progress_counts_runs_awaiting_a_grade_as_grading() -> None:
    waiting = run(score=None)
    not_graded = run(score=None, grade_status="failed")
    failed = run(status="failed", score=None, cost_cents=None)
    tally = progress([waiting, not_graded, failed], 3, THRESHOLD)
    assert (tally.done, tally.passed, tally.failed, tally.grading) == (3, 0, 2, 1)
    assert tally.avg_score is None
    assert tally.cost_cents == 32


def test_progress_holds_runs_against_their_expectations() -> None:
    expected = [parse_expected({"transcript_contains": ["refund"]}), parse_expected("failure")]
    tally = progress([run(score=None), run(score=None)], 2, THRESHOLD, expected=expected)
    # The first needs no grade and passes; the second waits on its grade's outcome.
    assert (tally.passed, tally.failed, tally.grading) == (1, 0, 1)
    tally = progress([run(score=0.1), run(call_outcome="success")], 2, THRESHOLD, expected=expected)
    assert (tally.passed, tally.failed) == (1, 1)


def test_progress_before_anything_is_done() -> None:
    assert progress([None] * 4, 4, THRESHOLD) == progress([], 4, THRESHOLD)
    empty = progress([], 4, THRESHOLD)
    assert (empty.done, empty.cost_cents, empty.avg_score) == (0, 0, None)


def test_tool_call_tuples_are_expected_shapes() -> None:
    assert tool_calls(TRANSCRIPT) == [("lookup_order", {"order": "12345"})]
    wrapped = {"role": "tool_call", "content": {"function": {"name": "f", "arguments": "{}"}}}
    assert tool_calls([wrapped]) == [("f", {})]
    assert ToolCall("f") in parse_expected({"tools_called": ["f"]}).tools_called
