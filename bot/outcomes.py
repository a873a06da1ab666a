"""What came of a person's click, as the core decided it; the builders turn each into words."""

from __future__ import annotations

from dataclasses import dataclass

from bot.budgets import OverBudget
from storage.models import BatchRecord, Launch


@dataclass(frozen=True)
class Started:
    launch: Launch
    run_id: int
    card_ts: str | None = None  # the run's card, in the launch's channel


@dataclass(frozen=True)
class Cancelled:
    pass


@dataclass(frozen=True)
class AlreadyDecided:
    launch: Launch | None  # None: the confirmation is no longer on record
    card_ts: str | None = None  # the card of the run it started, if any


@dataclass(frozen=True)
class ConfirmationExpired:
    pass


@dataclass(frozen=True)
class CannotPost:
    """The card could not be put up, so nothing was started: Slack refused it (`refused`), or
    had not taken it yet when waiting gave up (a busy or rate-limited channel)."""

    problem: str
    refused: bool = True


@dataclass(frozen=True)
class Refused:
    """ThunderPhone said no; nothing was started or charged."""

    reason: str


@dataclass(frozen=True)
class Unclear:
    """ThunderPhone gave no clear answer; the run is being looked for."""

    reason: str


@dataclass(frozen=True)
class NotRecorded:
    """Something that must be on record before the money could not be recorded, so nothing
    was started; `record` says what (the consent, with its audit entry, unless told)."""

    problem: str
    record: str = "your consent in the audit trail"


@dataclass(frozen=True)
class BatchStarted:
    """Some or all runs of a batch started; `problem` says why the others did not."""

    batch: BatchRecord
    started: int
    total: int
    problem: str | None = None
    card_ts: str | None = None  # the batch's card, in its channel


@dataclass(frozen=True)
class BatchAlreadyDecided:
    batch: BatchRecord | None  # None: the confirmation is no longer on record


LaunchOutcome = (
    Started
    | Cancelled
    | AlreadyDecided
    | ConfirmationExpired
    | CannotPost
    | Refused
    | Unclear
    | NotRecorded
    | OverBudget
)
BatchOutcome = (
    BatchStarted
    | BatchAlreadyDecided
    | Cancelled
    | ConfirmationExpired
    | CannotPost
    | Refused
    | Unclear
    | NotRecorded
    | OverBudget
)
