"""ThunderPhone request and response shapes.

Responses are parsed tolerantly because the docs and the official SDK disagree on several
shapes: unknown fields are ignored, enums stay plain strings, and a field the bot does not need
falls back to its default when it is missing or mistyped. Only the fields the bot cannot work
without are required; when one of those is absent or wrong, `parse` raises
`ThunderPhoneBadResponse`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from bot.thunderphone.errors import ThunderPhoneBadResponse

# ThunderPhone's ids (agents, numbers, calls, runs) are 64-bit integers, as SQLite's are.
MAX_ID = 2**63 - 1

__all__ = [
    "Agent",
    "Batch",
    "BatchRequest",
    "Call",
    "Grade",
    "IssueReport",
    "IssueReportRequest",
    "PhoneNumber",
    "ResponseModel",
    "Run",
    "TestCallRequest",
    "Transcript",
    "TranscriptEntry",
    "WebhookEndpoint",
    "WebhookEndpointCreated",
    "WebhookEndpointRequest",
    "WebhookEvent",
    "WebhookTestDelivery",
    "normalise_score",
    "parse_call_graded",
    "parse_test_call_completed",
]

TERMINAL_RUN_STATUSES = frozenset({"completed", "failed"})


def normalise_score(value: object) -> float | None:
    """Bring a grade score onto 0..1.

    The scale is disputed (docs: 0.0-1.0 float; SDK and n8n template: 0..100 int). An int is
    read as 0..100, a float up to 1.0 as 0..1 and a larger float as 0..100. The result is
    clamped to 0..1. None stays None; bools, NaN and non-numbers raise ValueError.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"score must be a number, not {type(value).__name__}")
    if isinstance(value, int):
        # Clamp before dividing: a huge int would overflow the float division.
        scaled = min(100, max(0, value)) / 100
    elif math.isnan(value):
        raise ValueError("score must be a number, not NaN")
    else:
        scaled = value if value <= 1.0 else value / 100
    return min(1.0, max(0.0, scaled))


# Inside the tolerant wrapper below, so an unreadable score becomes None instead of an error.
Score = Annotated[float | None, BeforeValidator(normalise_score)]


def _as_utc(value: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, so every time compares with every other.
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Time = Annotated[datetime | None, AfterValidator(_as_utc)]


class ResponseModel(BaseModel):
    """Base for parsed responses: tolerant everywhere except on required fields."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _default_when_invalid(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        try:
            return handler(value)
        except ValidationError:
            name = info.field_name
            field = cls.model_fields.get(name) if name is not None else None
            if field is None or field.is_required():
                raise
            return field.get_default(call_default_factory=True)

    @classmethod
    def parse(cls, data: object) -> Self:
        """Validate a decoded JSON value, raising ThunderPhoneBadResponse when it is unusable."""
        if not isinstance(data, Mapping):
            raise ThunderPhoneBadResponse(
                f"expected a {cls.__name__} object, got {type(data).__name__}", body=data
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or cls.__name__}: {error['msg']}"
                for error in exc.errors()
            )
            raise ThunderPhoneBadResponse(f"{cls.__name__} {problems}", body=data) from exc


class _Request(BaseModel):
    # Requests are built by the bot itself, so a misspelt field is a bug worth catching.
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The JSON body to send, without None values."""
        return self.model_dump(mode="json", exclude_none=True)


class TestCallRequest(_Request):
    """Body of POST /v1/test-calls."""

    __test__ = False  # not a pytest test class despite the name

    target_type: Literal["agent", "phone_number"]
    target_id: int
    direction: Literal["outbound", "inbound"] = "outbound"
    consent_to_charge: bool
    scenario_prompt: str = ""
    mode: Literal["bot", "sip"] = "bot"
    target_number: str | None = None


class BatchRequest(_Request):
    """Body of POST /v1/test-call-batches."""

    target_type: Literal["agent", "phone_number"]
    target_id: int
    direction: Literal["outbound", "inbound"] = "outbound"
    consent_to_charge: bool
    target_number: str | None = None
    run_count: int = Field(ge=1, le=20)
    stagger_seconds: int = Field(default=0, ge=0, le=60)
    scenario_prompts: list[str] = Field(default_factory=list)
    name: str = ""


class IssueReportRequest(_Request):
    """Body of POST /v1/calls/{call_id}/issue-reports."""

    title: str = Field(min_length=1, max_length=255)
    description: str = ""
    severity: Literal["info", "warning", "critical"] = "warning"
    source: str = "user"
    timestamp_seconds: int | None = None
    failing_turn_index: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class WebhookEndpointRequest(_Request):
    """Body of POST /v1/developer/webhook-endpoints; an empty `events` means every event."""

    label: str = Field(min_length=1, max_length=120)
    url: str
    events: list[str] = Field(default_factory=list)


class Run(ResponseModel):
    """One test-call run (SDK `SimulationRun`)."""

    id: int
    status: str
    target_type: str = ""
    target_id: int | None = None
    target_name: str = ""
    agent_name: str | None = None
    direction: str = ""
    target_number: str = ""
    scenario_prompt: str = ""
    mode: str = ""
    charge_multiplier: int = 2
    estimated_cost_cents: int | None = None
    call_id: int | None = None
    sip_call_id: int | None = None
    batch_id: int | None = None
    error_message: str = ""
    duration_seconds: int | None = None
    started_at: Time = None
    completed_at: Time = None
    created_at: Time = None
    updated_at: Time = None

    @property
    def is_terminal(self) -> bool:
        """True once the run has completed or failed."""
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def succeeded(self) -> bool:
        """True when the run completed (a completed run may still have a poor grade)."""
        return self.status == "completed"


class Batch(ResponseModel):
    """A batch of test-call runs (SDK `SimulationBatch`)."""

    id: int
    name: str = ""
    target_type: str = ""
    target_id: int | None = None
    target_number: str = ""
    direction: str = ""
    run_count: int | None = None
    stagger_seconds: int | None = None
    scenario_prompts: list[str] = Field(default_factory=list)
    status: str = ""
    total_runs: int | None = None
    completed_runs: int = 0
    failed_runs: int = 0
    run_ids: list[int] = Field(default_factory=list)
    estimated_cost_cents: int | None = None
    estimated_minutes: int | None = None
    error_message: str = ""
    started_at: Time = None
    completed_at: Time = None
    created_at: Time = None
    updated_at: Time = None


class Call(ResponseModel):
    """A call log (SDK `Call`); `grade_score` is normalised to 0..1."""

    call_id: int
    agent_id: int | None = None
    direction: str = ""
    status: str = ""
    end_reason: str = ""
    duration_seconds: int | None = None
    start_time: Time = None
    end_time: Time = None
    billable_minutes: float | None = None
    billing_total_cents: int | None = None
    grade_score: Score = None
    grade_status: str = ""
    is_test_call: bool = False
    issue_count: int = 0
    product: str = ""  # the product tier the call ran on: spark, bolt, storm-base, …


class TranscriptEntry(ResponseModel):
    """One turn: `user` (the caller), `assistant` (the agent), `tool_call`, `tool_response`."""

    role: str = ""
    content: str | dict[str, Any] | list[Any] | None = None
    content_type: str = ""
    start_ms: int | None = None
    end_ms: int | None = None


class Transcript(ResponseModel):
    """GET /v1/calls/{call_id}/transcript."""

    call_id: int | None = None
    entries: list[TranscriptEntry] = Field(default_factory=list, alias="transcripts")

    @field_validator("entries", mode="before")
    @classmethod
    def _drop_non_objects(cls, value: object) -> object:
        # One malformed turn should not hide the rest of the conversation.
        if isinstance(value, list):
            return [item for item in value if isinstance(item, Mapping)]
        return value


class Grade(ResponseModel):
    """The AI grade of a call (SDK `CallGrade`); `score` is normalised to 0..1."""

    call_id: int
    id: int | None = None
    status: str = ""
    score: Score = None
    summary: str = ""
    call_outcome: str = ""
    outcome_reasoning: str = ""
    goal_achievement: str | None = None
    grader_model: str = ""
    graded_at: Time = None
    updated_at: Time = None


class IssueReport(ResponseModel):
    """An issue report filed against a call."""

    id: int
    call_id: int | None = None
    severity: str = ""
    status: str = ""
    title: str = ""
    description: str = ""
    trace_id: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: Time = None


class Agent(ResponseModel):
    """An agent of the organisation (SDK `Agent`); `product` is its tier (`spark`, `bolt`, ...)."""

    id: int
    name: str = ""
    product: str = ""
    voice: str = ""


class PhoneNumber(ResponseModel):
    """A phone number of the organisation (SDK `PhoneNumber`)."""

    id: int
    number: str = ""
    label: str = ""
    inbound_agent_id: int | None = None
    outbound_agent_id: int | None = None
    status: str = ""


def _as_text(value: object) -> object:
    # Endpoint ids are UUIDs; one sent as a number still names the endpoint.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class WebhookEndpoint(ResponseModel):
    """A webhook endpoint of the organisation (SDK `DeveloperWebhookEndpoint`)."""

    id: Annotated[str, BeforeValidator(_as_text)]
    url: str
    label: str = ""
    events: list[str] = Field(default_factory=list)
    status: str = ""
    secret_hint: str = ""
    agent_id: int | None = None
    agent_name: str | None = None
    created_at: Time = None
    updated_at: Time = None

    def receives(self, event_type: str) -> bool:
        """Whether ThunderPhone sends this event type here (no events listed means all)."""
        return not self.events or event_type in self.events


class WebhookEndpointCreated(WebhookEndpoint):
    """The answer to creating an endpoint (SDK `WebhookCreated`): the only time the signing
    secret is shown."""

    secret: str


class WebhookTestDelivery(ResponseModel):
    """The answer to POST /v1/developer/webhook-endpoints/{id}/test (SDK
    `DeveloperWebhookTestDelivery`): whether the synthetic event was answered with a 2xx."""

    success: bool
    event_id: str = ""
    event_type: str = ""
    status: str = ""
    response_code: int | None = None
    error: str = ""


class WebhookEvent(ResponseModel):
    """The envelope of every webhook delivery: `type`, `data`, and (sometimes) `event_id`."""

    type: str
    event_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_body(cls, body: bytes | str) -> WebhookEvent:
        """Decode a raw delivery body; raises ThunderPhoneBadResponse when it is unusable."""
        try:
            decoded = json.loads(body)
        except ValueError as exc:
            raise ThunderPhoneBadResponse("webhook body is not JSON", body=body) from exc
        return cls.parse(decoded)


def _whole_number(value: object) -> bool:
    # As the models read ids: an int, or ASCII digits in a string; never a bool.
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return value.strip().isascii() and value.strip().isdigit()
    return isinstance(value, int) and value >= 0


def _completed_run(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "id" not in data:
        for key in ("test_call_run", "run"):
            nested = data.get(key)
            if isinstance(nested, Mapping):
                return nested
    return data


def _beyond_ids(value: object) -> bool:
    text = str(value).strip()
    return len(text) > len(str(MAX_ID)) or int(text) > MAX_ID


# A whole number beyond 64 bits takes at least 19 digits in a row to write, and JSON writes
# numbers in ASCII. With every digit made one mark, a plain substring search finds such a run
# ten times faster than the regex `\d{19}`, which tries a match at each place in the text.
_DIGITS_AS_MARKS = str.maketrans("0123456789", "#" * 10)
_LONG_NUMBER = "#" * 19


def _oversized(data: Mapping[str, Any]) -> tuple[str, int] | None:
    """The first whole number in `data` that no 64-bit integer (SQLite's) holds, and where."""
    pending: list[tuple[str, object]] = [("data", data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and not -MAX_ID - 1 <= value <= MAX_ID:
            return where, value
        if isinstance(value, Mapping):
            pending.extend((f"{where}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
    return None


def _check_numbers(event_type: str, data: Mapping[str, Any], raw: str | None) -> None:
    if raw is not None and _LONG_NUMBER not in raw.translate(_DIGITS_AS_MARKS):
        return  # the text holds no number that long: no need to walk the data
    found = _oversized(data)
    if found is not None:
        where, value = found
        raise ThunderPhoneBadResponse(
            f"{event_type} carries {where[:100]} = {value}, beyond a 64-bit integer",
            body=dict(data),
        )


def check_test_call_completed(data: Mapping[str, Any], *, raw: str | None = None) -> int:
    """What must hold before a `test-call.completed` delivery is accepted: it names its run, and
    holds no number SQLite could not store; returns the run's id. Cheaper than
    `parse_test_call_completed`, which the worker does later. `raw`, the delivery's text,
    spares the search for such a number when the text holds none."""
    run_id = _completed_run(data).get("id")
    if not _whole_number(run_id):
        raise ThunderPhoneBadResponse("test-call.completed names no run (id)", body=dict(data))
    if _beyond_ids(run_id):
        raise ThunderPhoneBadResponse(
            f"test-call.completed names run {run_id}, beyond any ThunderPhone id", body=dict(data)
        )
    _check_numbers("test-call.completed", data, raw)
    return int(str(run_id).strip())


def check_call_graded(data: Mapping[str, Any], *, raw: str | None = None) -> None:
    """What must hold before a `call.graded` delivery is accepted: it names its call, and holds
    no number SQLite could not store. `raw`, the delivery's text, spares the search for such
    a number when the text holds none."""
    nested = data.get("grade")
    grade = nested if isinstance(nested, Mapping) else data
    call_id = grade.get("call_id")
    if call_id is None:
        call_id = data.get("call_id")
    if not _whole_number(call_id):
        raise ThunderPhoneBadResponse("call.graded names no call (call_id)", body=dict(data))
    if _beyond_ids(call_id):
        raise ThunderPhoneBadResponse(
            f"call.graded names call {call_id}, beyond any ThunderPhone id", body=dict(data)
        )
    _check_numbers("call.graded", data, raw)


def parse_test_call_completed(data: Mapping[str, Any]) -> Run:
    """Read the run carried by a `test-call.completed` event.

    ThunderPhone's own CI example reads it as `data.test_call_run`; no other source shows the
    payload, so the run as `data` itself, or under `data.run`, is accepted too.
    """
    return Run.parse(_completed_run(data))


def parse_call_graded(data: Mapping[str, Any]) -> Grade:
    """Read the grade carried by a `call.graded` event (`{"call_id", "grade": {...}}`).

    The grade's `call_id` is filled from `data` when the grade lacks it; a grade object placed
    directly in `data` is accepted too.
    """
    nested = data.get("grade")
    if isinstance(nested, Mapping):
        grade = dict(nested)
        if grade.get("call_id") is None and data.get("call_id") is not None:
            grade["call_id"] = data["call_id"]
        return Grade.parse(grade)
    return Grade.parse(data)
