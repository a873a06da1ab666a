"""Parsing ThunderPhone shapes from the docs, the SDK superset, and webhook payloads."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.thunderphone.errors import ThunderPhoneBadResponse
from bot.thunderphone.models import (
    Batch,
    BatchRequest,
    Call,
    Grade,
    IssueReport,
    IssueReportRequest,
    Run,
    TestCallRequest,
    Transcript,
    WebhookEvent,
    check_call_graded,
    check_test_call_completed,
    normalise_score,
    parse_call_graded,
    parse_test_call_completed,
)

DOCS_RUN: dict[str, Any] = {
    "id": 7110, "target_type": "agent", "target_id": 12, "direction": "outbound",
    "target_number": "+14155550199",
    "scenario_prompt": "Roleplay as a customer asking about refunds.",
    "mode": "bot", "status": "completed", "charge_multiplier": 2, "estimated_cost_cents": 16,
    "call_id": 987654321, "sip_call_id": None, "error_message": "",
    "started_at": "2026-04-20T18:24:10.113Z", "completed_at": "2026-04-20T18:25:04.822Z",
    "batch_id": None, "created_at": "2026-04-20T18:24:09.011Z",
    "updated_at": "2026-04-20T18:25:04.822Z",
}  # fmt: skip

DOCS_CALL: dict[str, Any] = {
    "call_id": 987654321, "agent_id": 12, "direction": "inbound",
    "from_number": "+14155550199", "to_number": "+15551234567",
    "start_time": "2026-04-20T18:24:10.113Z", "end_time": "2026-04-20T18:25:04.822Z",
    "duration_seconds": 54, "status": "completed", "end_reason": "caller_hangup",
    "recording_url": None, "is_test_call": False, "product": "spark", "voice": "en-US-James1",
    "billable_minutes": 1, "billing_total_cents": 8, "billed_at": "2026-04-20T18:25:05.101Z",
    "grade_score": 0.92, "grade_status": "completed",
    "grade_updated_at": "2026-04-20T18:25:11.002Z", "issue_count": 0, "critical_issue_count": 0,
}  # fmt: skip

DOCS_TRANSCRIPT: dict[str, Any] = {
    "call_id": 987654321,
    "transcripts": [
        {"role": "assistant", "content_type": "text/plain",
         "content": "Thanks for calling, how can I help?", "start_ms": 300, "end_ms": 2100},
        {"role": "user", "content_type": "text/plain", "content": "What is your refund policy?",
         "start_ms": 2600, "end_ms": 4400},
        {"role": "tool_call", "content_type": "application/json",
         "content": {"name": "lookup_order", "arguments": {"order": "12345"}},
         "start_ms": 4500, "end_ms": 4500},
        {"role": "tool_response", "content_type": "application/json",
         "content": {"status": "shipped"}, "start_ms": 4510, "end_ms": 4510},
    ],
}  # fmt: skip

DOCS_ISSUE: dict[str, Any] = {
    "id": 4321, "call_id": 987654321, "source": "user", "severity": "warning", "status": "open",
    "title": "Agent paused too long",
    "description": "Five-second silence before responding to the main question.",
    "reported_by_id": 7, "timestamp_seconds": 48, "detected_issue_ref": None, "metadata": {},
    "trace_id": "5f9a...", "created_at": "2026-04-20T18:25:11.002Z",
    "updated_at": "2026-04-20T18:25:11.002Z",
}  # fmt: skip

SUPERSET_RUN: dict[str, Any] = {
    **DOCS_RUN, "target_name": "Support agent", "agent_name": "Support agent",
    "scenario_prompt": "Ask about refunds.", "duration_seconds": 54, "recording_url": None,
    "grade": None, "transcript": [], "metadata": {}, "requested_by_id": None,
}  # fmt: skip

SUPERSET_BATCH: dict[str, Any] = {
    "id": 301, "name": "", "target_type": "agent", "target_id": 12, "target_number": "",
    "direction": "outbound", "run_count": 5, "stagger_seconds": 2,
    "scenario_prompts": ["Ask about refunds.", "Ask for hours."], "matrix_dimensions": {},
    "status": "in_progress", "total_runs": 5, "completed_runs": 0, "failed_runs": 0,
    "run_ids": [7111, 7112, 7113, 7114, 7115], "estimated_cost_cents": 80,
    "estimated_minutes": 5, "error_message": "", "requested_by_id": None,
    "started_at": "2026-04-20T18:24:09.500Z", "completed_at": None,
    "created_at": "2026-04-20T18:24:09.011Z", "updated_at": "2026-04-20T18:24:09.011Z",
}  # fmt: skip

SUPERSET_CALL: dict[str, Any] = {
    **DOCS_CALL, "direction": "outbound", "agent_variant_id": None, "recording_mode": "recording",
    "recording_policy": {}, "is_test_call": True, "is_simulation": False, "locale": "en-US",
    "billing_total_cents": 16, "grade_score": 92, "call_outcome": None, "tool_snapshot": [],
    "transfer_destination": "", "unresolved_variables": [], "variables": {},
}  # fmt: skip

SUPERSET_GRADE: dict[str, Any] = {
    "id": 5501, "call_id": 987654321, "status": "completed", "score": 92,
    "summary": "Agent answered the refund question.", "call_outcome": "success",
    "outcome_reasoning": "Caller got the policy.", "goal_achievement": "achieved",
    "goal_reasoning": "", "caller_welfare_violation": False, "caller_welfare_reasoning": "",
    "detected_issues": [], "rubric_breakdown": {}, "grader_model": "grader-full",
    "grader_version": "1", "error_message": None, "graded_at": "2026-04-20T18:25:11.002Z",
    "created_at": "2026-04-20T18:25:05.500Z", "updated_at": "2026-04-20T18:25:11.002Z",
}  # fmt: skip

SUPERSET_ISSUE: dict[str, Any] = {
    **DOCS_ISSUE, "agent_id": 12, "call_start_time": "2026-04-20T18:24:10.113Z",
    "failing_turn_index": None, "relevant_turn_indices": [], "evidence": "",
    "linked_test_cases": [], "regression_guarded": False, "cluster_id": None,
    "trace_id": "5f9a1c2e-0d4b-4c1e-9a51-3b7d2f0e8c11",
}  # fmt: skip


@pytest.mark.parametrize("data", [DOCS_RUN, SUPERSET_RUN], ids=["docs", "superset"])
def test_run_parses(data: dict[str, Any]) -> None:
    run = Run.parse(data)
    assert (run.id, run.status, run.call_id, run.target_id) == (7110, "completed", 987654321, 12)
    assert run.batch_id is None
    assert run.charge_multiplier == 2
    assert run.completed_at == datetime(2026, 4, 20, 18, 25, 4, 822000, tzinfo=UTC)
    assert run.is_terminal
    assert run.succeeded


def test_superset_run_keeps_sdk_only_fields() -> None:
    run = Run.parse(SUPERSET_RUN)
    assert (run.target_name, run.agent_name, run.duration_seconds) == (
        "Support agent",
        "Support agent",
        54,
    )


@pytest.mark.parametrize(
    ("status", "terminal", "succeeded"),
    [("queued", False, False), ("in_progress", False, False), ("failed", True, False)],
)
def test_run_lifecycle_properties(status: str, terminal: bool, succeeded: bool) -> None:
    run = Run.parse({"id": 1, "status": status})
    assert (run.is_terminal, run.succeeded) == (terminal, succeeded)


def test_batch_parses() -> None:
    batch = Batch.parse(SUPERSET_BATCH)
    assert batch.id == 301
    assert batch.status == "in_progress"
    assert batch.run_ids == [7111, 7112, 7113, 7114, 7115]
    assert batch.scenario_prompts == ["Ask about refunds.", "Ask for hours."]
    assert batch.completed_at is None


def test_batch_without_run_ids_defaults_to_empty() -> None:
    data = {k: v for k, v in SUPERSET_BATCH.items() if k != "run_ids"}
    assert Batch.parse(data).run_ids == []


@pytest.mark.parametrize("data", [DOCS_CALL, SUPERSET_CALL], ids=["docs", "superset"])
def test_call_parses_and_grade_score_is_normalised(data: dict[str, Any]) -> None:
    call = Call.parse(data)
    assert call.call_id == 987654321
    assert call.grade_score == pytest.approx(0.92)
    assert call.billable_minutes == 1.0
    assert call.end_reason == "caller_hangup"
    assert call.start_time is not None


def test_transcript_parses_text_and_tool_turns() -> None:
    transcript = Transcript.parse(DOCS_TRANSCRIPT)
    assert transcript.call_id == 987654321
    assert [entry.role for entry in transcript.entries] == [
        "assistant",
        "user",
        "tool_call",
        "tool_response",
    ]
    assert transcript.entries[1].content == "What is your refund policy?"
    assert transcript.entries[2].content == {
        "name": "lookup_order",
        "arguments": {"order": "12345"},
    }
    assert transcript.entries[3].start_ms == 4510


def test_transcript_tolerates_null_and_junk_entries() -> None:
    assert Transcript.parse({"call_id": 1, "transcripts": None}).entries == []
    kept = Transcript.parse({"call_id": 1, "transcripts": ["junk", {"role": "user"}]})
    assert [entry.role for entry in kept.entries] == ["user"]
    assert Transcript.parse({"call_id": 1}).entries == []


@pytest.mark.parametrize("score", [0.92, 92])
def test_grade_score_on_either_scale_becomes_fraction(score: float) -> None:
    grade = Grade.parse({**SUPERSET_GRADE, "score": score})
    assert grade.score == pytest.approx(0.92)
    assert (grade.id, grade.call_outcome, grade.grader_model) == (5501, "success", "grader-full")


def test_grade_with_unreadable_score_keeps_the_rest() -> None:
    grade = Grade.parse({**SUPERSET_GRADE, "score": True})
    assert grade.score is None
    assert grade.summary == "Agent answered the refund question."


@pytest.mark.parametrize("data", [DOCS_ISSUE, SUPERSET_ISSUE], ids=["docs", "superset"])
def test_issue_report_parses(data: dict[str, Any]) -> None:
    issue = IssueReport.parse(data)
    assert (issue.id, issue.call_id, issue.severity, issue.status) == (
        4321,
        987654321,
        "warning",
        "open",
    )
    assert issue.trace_id == data["trace_id"]


def test_run_missing_status_raises_bad_response() -> None:
    data = {k: v for k, v in DOCS_RUN.items() if k != "status"}
    with pytest.raises(ThunderPhoneBadResponse, match="status"):
        Run.parse(data)


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (Run, {"status": "queued"}, "id"),
        (Run, {"id": "not-a-number", "status": "queued"}, "id"),
        (Call, {"agent_id": 12}, "call_id"),
        (Grade, {"score": 92}, "call_id"),
        (IssueReport, {"title": "x"}, "id"),
        (Batch, {"status": "pending"}, "id"),
    ],
)
def test_missing_or_mistyped_needed_field_raises(
    model: type[Run | Call | Grade | IssueReport | Batch], data: dict[str, Any], field: str
) -> None:
    with pytest.raises(ThunderPhoneBadResponse, match=field):
        model.parse(data)


def test_non_object_body_raises_bad_response() -> None:
    with pytest.raises(ThunderPhoneBadResponse, match="expected a Run object"):
        Run.parse(["not", "an", "object"])


def test_unknown_enum_values_and_extra_fields_are_harmless() -> None:
    run = Run.parse(
        {**DOCS_RUN, "status": "paused_for_review", "mode": "quantum", "brand_new_field": {"x": 1}}
    )
    assert (run.status, run.mode) == ("paused_for_review", "quantum")
    assert not run.is_terminal
    call = Call.parse({**DOCS_CALL, "direction": "widget", "status": "ringing"})
    assert (call.direction, call.status) == ("widget", "ringing")


def test_mistyped_optional_fields_fall_back_to_defaults() -> None:
    run = Run.parse(
        {**DOCS_RUN, "error_message": None, "started_at": "not a date", "target_id": "twelve"}
    )
    assert (run.error_message, run.started_at, run.target_id) == ("", None, None)
    assert run.call_id == 987654321


def test_test_call_request_json_has_no_none_values() -> None:
    request = TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
    assert request.to_json() == {
        "target_type": "agent",
        "target_id": 12,
        "direction": "outbound",
        "consent_to_charge": True,
        "scenario_prompt": "",
        "mode": "bot",
    }
    with_number = TestCallRequest(
        target_type="phone_number",
        target_id=3,
        consent_to_charge=True,
        mode="sip",
        target_number="+14155550199",
    )
    assert with_number.to_json()["target_number"] == "+14155550199"


@pytest.mark.parametrize(("run_count", "stagger"), [(0, 0), (21, 0), (5, -1), (5, 61)])
def test_batch_request_limits(run_count: int, stagger: int) -> None:
    with pytest.raises(ValidationError):
        BatchRequest(
            target_type="agent",
            target_id=12,
            consent_to_charge=True,
            run_count=run_count,
            stagger_seconds=stagger,
        )


def test_batch_request_json() -> None:
    request = BatchRequest(
        target_type="agent",
        target_id=12,
        consent_to_charge=True,
        run_count=20,
        stagger_seconds=60,
        scenario_prompts=["a", "b"],
    )
    assert request.to_json() == {
        "target_type": "agent",
        "target_id": 12,
        "direction": "outbound",
        "consent_to_charge": True,
        "run_count": 20,
        "stagger_seconds": 60,
        "scenario_prompts": ["a", "b"],
        "name": "",
    }


def test_issue_report_request() -> None:
    request = IssueReportRequest(title="Agent paused too long", timestamp_seconds=48)
    assert request.to_json() == {
        "title": "Agent paused too long",
        "description": "",
        "severity": "warning",
        "source": "user",
        "timestamp_seconds": 48,
        "metadata": {},
    }
    for bad_title in ("", "x" * 256):
        with pytest.raises(ValidationError):
            IssueReportRequest(title=bad_title)


def test_webhook_envelope_and_call_graded_payload() -> None:
    event = WebhookEvent.from_body(
        b'{"data":{"call_id":987654321,"grade":{"score":92,"status":"completed"}},'
        b'"event_id":"evt-1","type":"call.graded"}'
    )
    assert (event.type, event.event_id) == ("call.graded", "evt-1")
    grade = parse_call_graded(event.data)
    assert grade.call_id == 987654321
    assert grade.score == pytest.approx(0.92)


def test_webhook_envelope_without_event_id_and_bad_bodies() -> None:
    assert WebhookEvent.from_body('{"type": "x", "data": {}}').event_id is None
    with pytest.raises(ThunderPhoneBadResponse, match="not JSON"):
        WebhookEvent.from_body(b"<html>")
    with pytest.raises(ThunderPhoneBadResponse, match="type"):
        WebhookEvent.from_body(b'{"data": {}}')


def test_call_graded_accepts_grade_directly_in_data() -> None:
    grade = parse_call_graded(SUPERSET_GRADE)
    assert (grade.call_id, grade.id) == (987654321, 5501)


def test_call_graded_prefers_the_grades_own_call_id() -> None:
    grade = parse_call_graded({"call_id": 1, "grade": {"call_id": 2, "score": 0.5}})
    assert grade.call_id == 2


def test_call_graded_without_any_call_id_raises() -> None:
    with pytest.raises(ThunderPhoneBadResponse, match="call_id"):
        parse_call_graded({"grade": {"score": 0.5}})


def test_test_call_completed_payload() -> None:
    run = parse_test_call_completed({**DOCS_RUN, "status": "failed", "error_message": "no answer"})
    assert (run.id, run.status, run.error_message) == (7110, "failed", "no answer")
    nested = parse_test_call_completed({"run": DOCS_RUN})
    assert nested.id == 7110
    guide = parse_test_call_completed({"test_call_run": {**DOCS_RUN, "status": "completed"}})
    assert (guide.id, guide.status) == (7110, "completed"), "the shape of ThunderPhone's guide"
    with pytest.raises(ThunderPhoneBadResponse):
        parse_test_call_completed({"call_id": 5})


# -- score normalisation ---------------------------------------------------------------------


def test_normalise_score_examples() -> None:
    assert normalise_score(None) is None
    assert normalise_score(92) == pytest.approx(0.92)
    assert normalise_score(0.92) == pytest.approx(0.92)
    assert normalise_score(92.0) == pytest.approx(0.92)
    assert normalise_score(1) == pytest.approx(0.01)
    assert normalise_score(1.0) == 1.0
    assert normalise_score(150) == 1.0
    assert normalise_score(-5) == 0.0
    assert normalise_score(10**400) == 1.0
    for invalid in (True, False, "92", math.nan, [92]):
        with pytest.raises(ValueError):
            normalise_score(invalid)


@given(st.integers())
def test_normalise_score_int_is_percent_clamped(n: int) -> None:
    expected = 1.0 if n >= 100 else 0.0 if n <= 0 else n / 100
    assert normalise_score(n) == expected


@given(st.floats(allow_nan=False))
def test_normalise_score_float_is_in_unit_interval(x: float) -> None:
    result = normalise_score(x)
    assert result is not None
    assert 0.0 <= result <= 1.0
    expected = x if x <= 1.0 else x / 100
    assert result == min(1.0, max(0.0, expected))


@given(st.one_of(st.none(), st.integers(), st.floats(allow_nan=False)))
def test_normalise_score_is_none_only_for_none(value: float | None) -> None:
    result = normalise_score(value)
    assert (result is None) == (value is None)
    assert result is None or 0.0 <= result <= 1.0


def test_times_are_read_in_utc_with_or_without_an_offset() -> None:
    run = Run.parse(
        {
            "id": 1,
            "status": "queued",
            "created_at": "2026-04-20T18:24:09",
            "started_at": "2026-04-20T20:24:10+02:00",
        }
    )
    assert run.created_at is not None and run.started_at is not None
    assert run.created_at.isoformat() == "2026-04-20T18:24:09+00:00"
    assert run.started_at.isoformat() == "2026-04-20T18:24:10+00:00"


@pytest.mark.parametrize(
    "data",
    [
        {"test_call_run": {"id": 7110}},
        {"run": {"id": "7110"}},
        {"id": 7110, "status": "completed"},
    ],
)
def test_a_completed_delivery_is_accepted_when_it_names_its_run(data: dict[str, Any]) -> None:
    check_test_call_completed(data)  # no error: accepted


@pytest.mark.parametrize(
    "data", [{}, {"status": "completed"}, {"id": True}, {"test_call_run": {"id": "x"}}]
)
def test_a_completed_delivery_without_a_run_id_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ThunderPhoneBadResponse):
        check_test_call_completed(data)


def test_a_graded_delivery_must_name_its_call() -> None:
    check_call_graded({"call_id": 42, "grade": {"score": 90}})
    check_call_graded({"grade": {"call_id": "42"}})
    for data in ({"grade": {"score": 90}}, {"call_id": None}, {"call_id": 4.5}):
        with pytest.raises(ThunderPhoneBadResponse):
            check_call_graded(data)


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        ({"id": 7110, "call_id": 2**63}, True),
        ({"id": 7110, "metadata": {"turns": [1, -(2**63) - 1]}}, True),
        ({"id": 7110, "call_id": 2**63 - 1, "note": "order 12345678901234567890"}, False),
        ({"id": 7110, "score": 1e30}, False),
    ],
)
def test_the_text_spares_the_number_search_only_when_it_may(
    data: dict[str, Any], refused: bool
) -> None:
    """With the delivery's text at hand the check agrees with the walk through the data."""
    for raw in (None, json.dumps(data)):
        if refused:
            with pytest.raises(ThunderPhoneBadResponse, match="beyond a 64-bit integer"):
                check_test_call_completed(data, raw=raw)
        else:
            assert check_test_call_completed(data, raw=raw) == 7110


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    # Around the edges: the largest and smallest 64-bit numbers, and the first with 20 digits.
    | st.sampled_from([2**63, -(2**63), 10**19]).flatmap(
        lambda edge: st.integers(min_value=edge - 2, max_value=edge + 2)
    )
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet="0123456789#-. aé٣", max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)


@given(extra=_JSON_VALUES)
def test_the_text_never_spares_a_search_the_data_needs(extra: object) -> None:
    """Whatever else a delivery holds, the check with its text refuses what the walk through
    its data refuses, and nothing more."""
    data = {"id": 7110, "extra": extra}
    outcomes = []
    for raw in (None, json.dumps(data)):
        try:
            outcomes.append(check_test_call_completed(data, raw=raw))
        except ThunderPhoneBadResponse as error:
            outcomes.append(str(error))
    assert outcomes[0] == outcomes[1]
