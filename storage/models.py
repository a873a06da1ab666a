"""Rows as typed records. Plain data: no Slack or HTTP knowledge."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, model_validator

# "unknown": ThunderPhone did not answer clearly; the run may exist and is looked for.
LaunchStatus = Literal[
    "proposed", "launching", "launched", "failed", "cancelled", "expired", "unknown"
]
TERMINAL_RUN_STATUSES = frozenset({"completed", "failed"})
_RUN_STATUS_RANK = {"queued": 0, "in_progress": 1, "completed": 2, "failed": 2}


def run_status_rank(status: str) -> int:
    """Order of the run lifecycle; an unknown status ranks with `queued`."""
    return _RUN_STATUS_RANK.get(status, 0)


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Any:
        return cls.model_validate(row)


class Alias(Record):
    team_id: str
    name: str
    target_type: str
    target_id: int
    created_by: str = ""
    created_at: str = ""


class CallSpec(Record):
    """What a test call is: the one description shared by launches, runs and the request
    ThunderPhone receives."""

    target_type: str
    target_id: int
    direction: str = "outbound"
    mode: str = "bot"
    caller_number: str | None = None
    scenario_prompt: str = ""

    @property
    def spec(self) -> CallSpec:
        """Just the call, without whatever a subclass records around it."""
        return CallSpec.model_validate(self.model_dump(include=set(CallSpec.model_fields)))


class Launch(CallSpec):
    id: str
    team_id: str
    channel_id: str
    user_id: str
    target_label: str = ""
    status: LaunchStatus = "proposed"
    run_id: int | None = None
    error: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    sent_at: str | None = None  # when the create went out; None: not known to have gone out
    created_at: str = ""


class RunRecord(CallSpec):
    run_id: int
    launch_id: str | None = None
    team_id: str
    channel_id: str
    started_by: str
    target_name: str = ""
    status: str = "queued"
    call_id: int | None = None
    error_message: str | None = None
    duration_seconds: int | None = None
    cost_cents: int | None = None
    end_reason: str | None = None
    created_at: str = ""
    started_at: str | None = None
    completed_at: str | None = None
    updated_at: str = ""
    batch_id: str | None = None  # a run of a batch: its reply goes under the batch's card
    position: int | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


class GradeRecord(Record):
    call_id: int
    score: float | None = None
    status: str = ""
    call_outcome: str = ""
    summary: str = ""
    outcome_reasoning: str = ""
    grader_model: str = ""
    graded_at: str | None = None


class FlagRecord(Record):
    run_id: int
    call_id: int
    user_id: str
    severity: str
    title: str
    description: str = ""
    turn: int | None = None
    status: Literal["filing", "filed", "failed"] = "filing"
    issue_id: int | None = None
    trace_id: str | None = None
    permalink: str | None = None
    error: str | None = None
    created_at: str = ""


# pending: Slack does not show the stored payload yet · posting: a post went out and its answer
# was not recorded, so Slack may hold it · sent: Slack shows it · failed: given up ·
# withdrawn: the message should not exist (deleted once found).
MessageState = Literal["pending", "posting", "sent", "failed", "withdrawn"]
MessageKey = tuple[str, str, str]  # (owner kind, owner id, role)


class MessageRecord(Record):
    """A Slack message the bot owns, and how far its delivery has got."""

    id: int
    owner_kind: str
    owner_id: str
    role: str
    channel: str
    parent_id: int | None = None
    ts: str | None = None
    payload: str
    digest: str
    shown_digest: str | None = None
    state: MessageState = "pending"
    attempts: int = 0
    next_attempt_at: str | None = None
    posted_at: str | None = None
    error: str | None = None
    notify_user: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def key(self) -> MessageKey:
        return (self.owner_kind, self.owner_id, self.role)

    @property
    def maybe_posted(self) -> bool:
        """A post went out and nobody knows whether Slack took it: look before posting."""
        return self.ts is None and self.posted_at is not None


class SuiteCaseRecord(Record):
    """One case of a suite, in its place. `expected_outcome` is JSON text as imported (None:
    the file gave none), read with `bot.expectations.parse_expected`."""

    position: int
    name: str
    scenario_prompt: str
    expected_outcome: str | None = None


class SuiteRecord(Record):
    """A saved suite: its cases in order, and the default target and settings of its runs."""

    name: str
    target_type: str | None = None
    target_id: int | None = None
    settings: dict[str, Any] = {}
    created_by: str = ""
    created_at: str = ""
    updated_at: str = ""
    cases: list[SuiteCaseRecord] = []


class SuiteSummary(Record):
    """A line of the suite list."""

    name: str
    case_count: int
    target_type: str | None = None
    target_id: int | None = None
    updated_at: str = ""


# batch: prompts given at once · suite: a suite's cases · smoke: `/testcall smoke` (a target's
# smoke suite, which also names `suite`, or the built-in happy paths).
BatchKind = Literal["batch", "suite", "smoke"]
BatchStatus = Literal[
    "proposed", "launching", "launched", "partial", "failed", "cancelled", "expired"
]
# pending: not sent yet · launching: being sent · launched: ThunderPhone created it ·
# refused: ThunderPhone said no · unknown: no clear answer, looked for · skipped: never sent.
BatchPartStatus = Literal["pending", "launching", "launched", "refused", "unknown", "skipped"]


class BatchRecord(Record):
    """Several runs requested at once: one consent, one card."""

    id: str
    team_id: str
    channel_id: str
    user_id: str
    target_type: str
    target_id: int
    target_label: str = ""
    target_name: str = ""
    direction: str = "outbound"
    caller_number: str | None = None
    stagger: int = 0
    repeat: int = 1
    suite: str | None = None
    status: BatchStatus = "proposed"
    error: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    created_at: str = ""
    finished_at: str | None = None
    blessed_by: str | None = None
    blessed_at: str | None = None
    kind: BatchKind = "batch"
    compare_id: str | None = None  # one target of a compare: shown on the compare's card

    @model_validator(mode="after")
    def _a_suite_run_is_one(self) -> BatchRecord:
        # A batch planned from a suite is a suite run unless it was said to be a smoke test.
        if self.kind == "batch" and self.suite is not None:
            self.kind = "suite"
        return self


class BatchPart(Record):
    """One ThunderPhone batch (at most 20 runs) of a request."""

    batch_id: str
    part: int
    status: BatchPartStatus = "pending"
    tp_batch_id: int | None = None
    error: str | None = None
    updated_at: str = ""


class BatchItem(Record):
    """One planned run of a batch: a prompt (a suite case's, with what it expects)."""

    batch_id: str = ""
    position: int
    part: int = 0
    case_name: str | None = None
    prompt: str
    expected: str | None = None  # the case's expected_outcome as JSON
    attempt: int = 1
    run_id: int | None = None
    verdict: str | None = None


class SmokeSuite(Record):
    """The suite `/testcall smoke` runs on a target, and who chose it."""

    target_type: str
    target_id: int
    suite: str
    marked_by: str = ""
    marked_at: str = ""


# proposed: waiting for Start · launching: being sent, target after target · launched: every
# target's batch started · partial: some did · failed: none did (or the card could not be
# posted) · cancelled / expired: never sent.
CompareStatus = Literal[
    "proposed", "launching", "launched", "partial", "failed", "cancelled", "expired"
]


class CompareRecord(Record):
    """The same scenarios (a suite's cases, or one prompt) against several targets: one
    consent, one card, one batch per target."""

    id: str
    team_id: str
    channel_id: str
    user_id: str
    suite: str | None = None
    prompt: str | None = None
    repeat: int = 1
    status: CompareStatus = "proposed"
    error: str | None = None
    decided_by: str | None = None
    decided_at: str | None = None
    created_at: str = ""
    finished_at: str | None = None  # every run of every target done; the chart is drawn once
    chart_at: str | None = None  # the chart was shared (or could not be)
    chart_error: str | None = None


# What an audit event records: the actions the trail knows, each done by someone (or by the bot
# on someone's behalf).
AuditAction = Literal[
    "consented",  # Start pressed: consent to charge; cost_cents is the estimate then
    "launched",  # ThunderPhone started the run (or a batch's runs)
    "launch_failed",  # nothing (more) started; detail says why
    "launch_unclear",  # ThunderPhone's answer was unclear: the runs are looked for
    "cancelled",  # Cancel pressed: nothing started
    "expired",  # Start pressed on a confirmation too old to start
    "flagged",  # a call flagged for review: an issue report filed with ThunderPhone
    "blessed",  # a suite run made its suite's baseline on its target
    "over_budget",  # Start pressed over a spend cap: refused, or waiting for an admin
    "approved",  # a spend over a cap, approved by an admin; cost_cents is the estimate
    "declined",  # a spend over a cap, declined by an admin: nothing started
    "alias_set",  # settings changes from here on
    "alias_removed",
    "suite_imported",
    "suite_deleted",
    "smoke_suite_set",
    "budget_set",
    "budget_cleared",
    "permission_set",  # who may start runs, bless baselines or file critical reports
]
AUDIT_ACTIONS: tuple[str, ...] = get_args(AuditAction)
SETTINGS_CHANGES = frozenset(AUDIT_ACTIONS[AUDIT_ACTIONS.index("alias_set") :])
# The actions whose cost is an estimate (made at consent); any other cost was billed.
ESTIMATED_COSTS = frozenset({"consented", "over_budget", "approved", "declined"})
AuditSubject = Literal[
    "launch", "run", "batch", "compare", "suite", "alias", "budget", "permission"
]


class AuditEvent(Record):
    """Who did what, when, where, to what, and what it cost. Only ever added, never changed."""

    id: int | None = None
    at: str = ""
    team_id: str = ""
    channel_id: str = ""
    user_id: str
    action: AuditAction
    subject_kind: AuditSubject
    subject_id: str
    detail: str = ""
    cost_cents: int | None = None

    @property
    def estimated(self) -> bool:
        """Whether `cost_cents` is an estimate rather than what was billed."""
        return self.action in ESTIMATED_COSTS

    @property
    def settings_change(self) -> bool:
        return self.action in SETTINGS_CHANGES
