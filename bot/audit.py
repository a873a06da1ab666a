"""The audit trail: who started, consented to, cancelled, flagged or blessed what, and who
changed which setting, when, where and what it cost.

The functions that record an event are called where the change happens, inside the same
transaction (`db.atomic()`) as the change, so a change is never made without its record: a
consent that cannot be recorded launches nothing. Each event's `detail` is short plain words
(the builders escape it); costs are in cents, an estimate at consent, billed elsewhere.
`find_trail` is what `/testcall audit` shows; `thunderbot audit` exports `storage.audit.since`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlite_utils import Database

from bot.commands import AuditCommand
from storage import audit as audit_store
from storage import batches as batch_store
from storage import compares as compare_store
from storage import runs as run_store
from storage.models import (
    Alias,
    AuditAction,
    AuditEvent,
    AuditSubject,
    BatchRecord,
    CompareRecord,
    FlagRecord,
    Launch,
    LaunchStatus,
    RunRecord,
    SuiteRecord,
)
from storage.permissions import PermissionRule

MAX_SHOWN = 20  # lines `/testcall audit` shows, newest first
DETAIL_CHARS = 200
Decision = Literal["consented", "cancelled", "expired"]


def decision_of(to: str) -> Decision:
    """What a claim of a confirmation (to `launching`, `cancelled` or `expired`) records."""
    if to == "launching":
        return "consented"
    return "cancelled" if to == "cancelled" else "expired"


@dataclass(frozen=True)
class Where:
    """Where an event happened and who did it."""

    user_id: str
    team_id: str = ""
    channel_id: str = ""


def target_words(target_type: str, target_id: int, label: str = "") -> str:
    """`agent 12`, or `support (agent 12)` when the person named it by an alias."""
    noun = "agent" if target_type == "agent" else "number"
    reference = f"{noun} {target_id}"
    return f"{label} ({reference})" if label and ":" not in label else reference


def estimate(costs: Sequence[int], runs: int = 1) -> int | None:
    """What `runs` runs are expected to cost (cents): the average of `costs` each."""
    return round(sum(costs) / len(costs) * runs) if costs else None


def _words(*parts: str | None) -> str:
    text = " · ".join(" ".join(part.split()) for part in parts if part and part.strip())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1].rstrip() + "…"


def record(
    db: Database,
    action: AuditAction,
    subject: tuple[AuditSubject, str],
    where: Where,
    *,
    detail: str = "",
    cost_cents: int | None = None,
) -> AuditEvent:
    """Add one event; the caller holds the transaction of the change it describes."""
    kind, subject_id = subject
    return audit_store.record(
        db,
        AuditEvent(
            team_id=where.team_id,
            channel_id=where.channel_id,
            user_id=where.user_id,
            action=action,
            subject_kind=kind,
            subject_id=subject_id,
            detail=detail,
            cost_cents=cost_cents,
        ),
    )


# ---------------------------------------------------------------------------------------------
# Single test calls


def _launch_where(launch: Launch, user_id: str | None = None) -> Where:
    who = user_id or launch.decided_by or launch.user_id
    return Where(who, launch.team_id, launch.channel_id)


def launch_decided(db: Database, launch: Launch, action: Decision, user_id: str) -> None:
    """Start (consent, with the estimate then), Cancel, or Start too late, on a test call."""
    cost = None
    if action == "consented":
        cost = estimate(run_store.recent_costs(db, launch.target_type, launch.target_id))
    detail = _words(target_words(launch.target_type, launch.target_id, launch.target_label))
    record(
        db,
        action,
        ("launch", launch.id),
        _launch_where(launch, user_id),
        detail=detail,
        cost_cents=cost,
    )


def launch_settled(
    db: Database,
    launch: Launch,
    status: LaunchStatus,
    *,
    run_id: int | None = None,
    error: str | None = None,
) -> None:
    """What came of a launch: its run, or why there is none (or that it is being looked for)."""
    target = target_words(launch.target_type, launch.target_id, launch.target_label)
    where = _launch_where(launch)
    if status == "launched" and run_id is not None:
        record(db, "launched", ("run", str(run_id)), where, detail=_words(target))
    elif status == "failed":
        record(db, "launch_failed", ("launch", launch.id), where, detail=_words(target, error))
    elif status == "unknown":
        record(db, "launch_unclear", ("launch", launch.id), where, detail=_words(target, error))


def flagged(db: Database, run: RunRecord, flag: FlagRecord) -> None:
    """A call flagged for review: the issue report ThunderPhone took, and what the run cost."""
    issue = f"issue {flag.issue_id}" if flag.issue_id is not None else None
    record(
        db,
        "flagged",
        ("run", str(run.run_id)),
        Where(flag.user_id, run.team_id, run.channel_id),
        detail=_words(flag.severity, f"“{flag.title}”", issue),
        cost_cents=run.cost_cents,
    )


# ---------------------------------------------------------------------------------------------
# Batches, suite runs, smoke tests and compares


def _batch_what(batch: BatchRecord, runs: str) -> str:
    target = target_words(batch.target_type, batch.target_id, batch.target_label)
    kind = None
    if batch.kind == "smoke":
        kind = "smoke test"
    elif batch.suite is not None:
        kind = f"suite {batch.suite}"
    return _words(kind, f"{runs} on {target}")


def _runs(count: int) -> str:
    return f"{count} run{'' if count == 1 else 's'}"


def batch_decided(db: Database, batch: BatchRecord, action: Decision, user_id: str) -> None:
    """Start (consent, with the estimate for every run), Cancel, or Start too late."""
    count = len(batch_store.get_items(db, batch.id))
    cost = None
    if action == "consented":
        cost = estimate(run_store.recent_costs(db, batch.target_type, batch.target_id), count)
    record(
        db,
        action,
        ("batch", batch.id),
        Where(user_id, batch.team_id, batch.channel_id),
        detail=_batch_what(batch, _runs(count)),
        cost_cents=cost,
    )


def part_settled(
    db: Database,
    batch: BatchRecord,
    part: int,
    action: Literal["launched", "launch_failed", "launch_unclear"],
    *,
    error: str | None = None,
) -> None:
    """What came of one ThunderPhone batch of a request: its runs started, or why not."""
    items = batch_store.get_items(db, batch.id)
    positions = [item.position + 1 for item in items if item.part == part]
    if not positions:
        return
    runs = _runs(len(positions))
    if len(positions) < len(items):
        span = f"{positions[0]}-{positions[-1]}" if len(positions) > 1 else str(positions[0])
        runs = f"runs {span} of {len(items)}"
    where = Where(batch.decided_by or batch.user_id, batch.team_id, batch.channel_id)
    record(db, action, ("batch", batch.id), where, detail=_words(_batch_what(batch, runs), error))


def batch_not_started(db: Database, batch: BatchRecord, reason: str, runs: int) -> None:
    """`runs` runs of a batch were never sent (its card could not be posted, the bot stopped)."""
    where = Where(batch.decided_by or batch.user_id, batch.team_id, batch.channel_id)
    detail = _words(_batch_what(batch, _runs(runs)), reason)
    record(db, "launch_failed", ("batch", batch.id), where, detail=detail)


def compare_decided(db: Database, compare: CompareRecord, action: Decision, user_id: str) -> None:
    """Start on a compare (consent, with the estimate over every target), Cancel, or too late."""
    batches = compare_store.batches_of(db, compare.id)
    counts = [len(batch_store.get_items(db, batch.id)) for batch in batches]
    cost = None
    partial = None
    if action == "consented":
        estimates = [
            estimate(run_store.recent_costs(db, batch.target_type, batch.target_id), count)
            for batch, count in zip(batches, counts, strict=True)
        ]
        known = [amount for amount in estimates if amount is not None]
        cost = sum(known) if known else None
        if known and len(known) < len(estimates):
            partial = f"estimate for {len(known)} of {len(estimates)} targets"
    targets = ", ".join(
        target_words(batch.target_type, batch.target_id, batch.target_label) for batch in batches
    )
    what = f"suite {compare.suite}" if compare.suite else "one prompt"
    record(
        db,
        action,
        ("compare", compare.id),
        Where(user_id, compare.team_id, compare.channel_id),
        detail=_words(what, f"{_runs(sum(counts))} on {targets}", partial),
        cost_cents=cost,
    )


def compare_not_started(db: Database, compare: CompareRecord, reason: str) -> None:
    """A compare that sent nothing: its card could not be posted."""
    where = Where(compare.decided_by or compare.user_id, compare.team_id, compare.channel_id)
    what = f"suite {compare.suite}" if compare.suite else "one prompt"
    record(db, "launch_failed", ("compare", compare.id), where, detail=_words(what, reason))


def blessed(db: Database, batch: BatchRecord, user_id: str) -> None:
    target = target_words(batch.target_type, batch.target_id, batch.target_label)
    record(
        db,
        "blessed",
        ("batch", batch.id),
        Where(user_id, batch.team_id, batch.channel_id),
        detail=_words(f"baseline of suite {batch.suite} on {target}"),
    )


# ---------------------------------------------------------------------------------------------
# Settings


def alias_set(db: Database, alias: Alias, previous: Alias | None, where: Where) -> None:
    target = target_words(alias.target_type, alias.target_id)
    was = None
    if previous is not None:
        before = target_words(previous.target_type, previous.target_id)
        was = "unchanged" if before == target else f"was {before}"
    detail = f"{target} ({was})" if was else target
    record(db, "alias_set", ("alias", alias.name), where, detail=detail)


def alias_removed(db: Database, alias: Alias, where: Where) -> None:
    was = f"was {target_words(alias.target_type, alias.target_id)}"
    record(db, "alias_removed", ("alias", alias.name), where, detail=was)


def suite_imported(
    db: Database, stored: SuiteRecord, previous: SuiteRecord | None, where: Where
) -> None:
    cases = f"{len(stored.cases)} case{'' if len(stored.cases) == 1 else 's'}"
    replaced = f"replacing {len(previous.cases)}" if previous is not None else None
    record(db, "suite_imported", ("suite", stored.name), where, detail=_words(cases, replaced))


def suite_deleted(db: Database, name: str, cases: int, where: Where) -> None:
    detail = f"had {cases} case{'' if cases == 1 else 's'}"
    record(db, "suite_deleted", ("suite", name), where, detail=detail)


def smoke_suite_set(
    db: Database, suite: str, target_type: str, target_id: int, where: Where
) -> None:
    detail = f"smoke suite of {target_words(target_type, target_id)}"
    record(db, "smoke_suite_set", ("suite", suite), where, detail=detail)


def _who_words(rule: PermissionRule | None) -> str:
    """A rule's people in plain words: `everyone`, `only maria (U0MARIA), qa-leads (S0QA)`."""
    if rule is None or rule.everyone:
        return "everyone"
    named = [
        f"{rule.labels[ident]} ({ident})" if rule.labels.get(ident) else ident
        for ident in [*rule.users, *rule.groups]
    ]
    return "only " + (", ".join(named) or "nobody")


def permission_subject(capability: str, channel_id: str) -> str:
    """A rule as the trail names it: `start`, or `start:C0QA` for one channel's."""
    return f"{capability}:{channel_id}" if channel_id else capability


def permission_set(
    db: Database,
    capability: str,
    channel_id: str,
    now: PermissionRule | None,
    before: PermissionRule | None,
    where: Where,
) -> None:
    """An admin changed who may start, bless or file critical reports (`now` None: the rule
    was removed, so the default applies again)."""
    after = _who_words(now) if now is not None else "back to the default"
    detail = _words(after, f"was {_who_words(before)}" if before is not None else None)
    subject = permission_subject(capability, channel_id)
    record(db, "permission_set", ("permission", subject), where, detail=detail)


# ---------------------------------------------------------------------------------------------
# Reading the trail


class AuditRefused(Exception):
    """An id that names nothing the trail can show here; `problem` says which and why."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class Trail:
    """What `/testcall audit` shows: the newest events about something, or in a channel."""

    about: str  # "run 7110", "batch 3f9a0c12"…; "" for the channel's own events
    events: list[AuditEvent]
    more: bool  # older events exist beyond those shown


def find_trail(
    db: Database, command: AuditCommand, *, channel_id: str, limit: int = MAX_SHOWN
) -> Trail:
    """The events `command` asks for, newest first. Raises AuditRefused for an id that names
    no run, batch or compare, names several, or belongs to another channel."""
    if command.run_id is None and command.prefix is None:
        events = audit_store.in_channel(db, channel_id, limit=limit + 1)
        return Trail("", events[:limit], len(events) > limit)
    about, home, _, subjects = _subjects(db, command)
    if home and home != channel_id:
        raise AuditRefused(
            f"{about.capitalize()} was started in another channel: ask there, or export every "
            "event with `thunderbot audit` on the bot's host."
        )
    events = audit_store.for_subjects(db, subjects, limit=limit + 1)
    return Trail(about, events[:limit], len(events) > limit)


@dataclass(frozen=True)
class Home:
    """What an audit id names, the channel it was started in, and who started it."""

    about: str
    channel_id: str
    started_by: str


def home_of(db: Database, command: AuditCommand) -> Home | None:
    """Where the run, batch or compare `command` names was started; None for the channel's
    own trail. Raises AuditRefused for an id that names nothing, or several things."""
    if command.run_id is None and command.prefix is None:
        return None
    about, channel_id, started_by, _ = _subjects(db, command)
    return Home(about, channel_id, started_by)


def _subjects(db: Database, command: AuditCommand) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(what the id names, its channel, who started it, the subjects whose events are its
    trail)."""
    if command.run_id is not None:
        run = run_store.get_run(db, command.run_id)
        if run is not None:
            return f"run {run.run_id}", run.channel_id, run.started_by, _run_subjects(db, run)
    prefix = command.prefix
    if prefix is None:
        raise AuditRefused(
            f"I have no record of run {command.run_id}. A run's id is the number on its card, "
            "like run 7110."
        )
    batches = batch_store.ids_starting(db, prefix)
    compares = compare_store.ids_starting(db, prefix)
    if len(batches) + len(compares) > 1:
        raise AuditRefused(
            f"More than one batch or compare starts with {prefix}: give more of its id."
        )
    if batches:
        batch = batch_store.get_batch(db, batches[0])
        assert batch is not None
        subjects = _batch_subjects(db, batch)
        if batch.compare_id is not None:
            subjects.append(("compare", batch.compare_id))
        started_by = batch.decided_by or batch.user_id
        return f"batch {batch.id[:8]}", batch.channel_id, started_by, subjects
    if compares:
        compare = compare_store.get_compare(db, compares[0])
        assert compare is not None
        subjects = [("compare", compare.id)]
        for member in compare_store.batches_of(db, compare.id):
            subjects += _batch_subjects(db, member)
        started_by = compare.decided_by or compare.user_id
        return f"compare {compare.id[:8]}", compare.channel_id, started_by, subjects
    either = f"run {command.run_id} or " if command.run_id is not None else ""
    raise AuditRefused(
        f"I have no record of {either}batch {prefix}. A batch's id is the one on its card, like "
        "batch 3f9a0c12; a run's is the number on its card, like run 7110."
    )


def _run_subjects(db: Database, run: RunRecord) -> list[tuple[str, str]]:
    """A run, the launch it came from, and the batch (and compare) it belongs to."""
    subjects = [("run", str(run.run_id))]
    if run.launch_id is not None:
        subjects.append(("launch", run.launch_id))
    if run.batch_id is not None:
        subjects.append(("batch", run.batch_id))
        batch = batch_store.get_batch(db, run.batch_id)
        if batch is not None and batch.compare_id is not None:
            subjects.append(("compare", batch.compare_id))
    return subjects


def _batch_subjects(db: Database, batch: BatchRecord) -> list[tuple[str, str]]:
    """A batch and its runs (a flag is recorded on its run)."""
    runs = [
        ("run", str(item.run_id))
        for item in batch_store.get_items(db, batch.id)
        if item.run_id is not None
    ]
    return [("batch", batch.id), *runs]
