"""Smoke tests: a quick check of a target before (or after) a release.

`/testcall smoke <target>` runs the suite marked as that target's smoke suite
(`/testcall suite smoke NAME <target>`), or, when none is marked, five built-in happy-path
scenarios: ThunderPhone's "per-release smoke test". Either way each case runs once, with no
stagger between launches, after the usual confirmation. A marked suite's run names its suite,
so it is checked and compared with the suite's baseline like any suite run; the built-in
scenarios each expect a successful call.
"""

from __future__ import annotations

import json
from typing import Any

from bot import audit
from bot.batches import UnknownSuite, plan
from bot.blocks.common import escape, plural, target_plain, target_text
from bot.blocks.replies import decided
from bot.commands import CommandError, Target
from bot.launch import resolve_target
from bot.services import Services
from bot.suites import suite_from_record
from storage import batches as batch_store
from storage import suites as suite_store
from storage.models import BatchItem, BatchRecord

SMOKE_STAGGER_SECONDS = 0
_SUCCESS = json.dumps("success")

# (case name, scenario prompt): generic happy paths any customer-facing voice agent should
# handle, each expecting a successful call.
BUILT_IN_CASES: tuple[tuple[str, str], ...] = (
    (
        "greeting",
        "You are a friendly first-time caller. Greet the agent, ask in one sentence what the "
        "business can help you with, listen to the answer, thank them and end the call.",
    ),
    (
        "business-hours",
        "You are a caller planning a visit this week. Ask what the opening hours are on "
        "weekdays and on Saturday, repeat the hours back to check you understood, then thank "
        "the agent.",
    ),
    (
        "order-status",
        "You are a customer checking on a recent order. Ask for the status of order 48213 and "
        "when it should arrive. If asked, your name is Sam Taylor. Thank the agent once you "
        "have an answer.",
    ),
    (
        "callback-request",
        "You are a busy caller who cannot stay on the line. Ask for someone to call you back "
        "tomorrow afternoon about a question on your account, give your name, Alex Morgan, "
        "when asked, and confirm the callback before hanging up.",
    ),
    (
        "polite-goodbye",
        "You are a polite caller whose question was answered on an earlier call. Thank the "
        "agent for their help, confirm you need nothing else, and say goodbye.",
    ),
)


def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, target: Target
) -> tuple[BatchRecord, list[BatchItem], list[int]]:
    """Record the smoke test of `target` as a proposed batch; returns it, its items and the
    target's recent costs, for the confirmation. Raises `bot.launch.UnknownAlias`, or
    `CommandError` when the marked suite no longer exists (the mark is then dropped)."""
    db = services.db
    target_type, target_id, _ = resolve_target(services, team_id, target)
    mark = suite_store.smoke_suite_of(db, target_type, target_id)
    cases: list[tuple[str | None, str, str | None]] = [
        (name, prompt, _SUCCESS) for name, prompt in BUILT_IN_CASES
    ]
    direction, caller, suite_name = "outbound", None, None
    if mark is not None:
        record = suite_store.get_suite(db, mark.suite)
        if record is None:
            suite_store.unmark_smoke_suite(db, target_type, target_id)
            raise CommandError(
                f'The smoke suite of {target_plain(target_type, target_id)}, "{mark.suite}", no '
                "longer exists, so I removed the mark. Import it again and mark it with "
                f"/testcall suite smoke {mark.suite} {target.label}, or run /testcall smoke "
                f"{target.label} again for the five built-in scenarios.",
                "smoke",
            )
        suite = suite_from_record(record)
        cases = [(c.name, c.scenario_prompt, c.expected_outcome) for c in suite.cases]
        direction = suite.settings.direction or "outbound"
        caller, suite_name = suite.settings.caller_number, suite.name
    batch, items, costs = plan(
        services,
        team_id=team_id,
        channel_id=channel_id,
        user_id=user_id,
        target=target,
        cases=cases,
        direction=direction,
        caller_number=caller,
        stagger=SMOKE_STAGGER_SECONDS,
        repeat=1,
        suite=suite_name,
    )
    batch_store.set_kind(db, batch.id, "smoke")
    smoke = batch_store.get_batch(db, batch.id)
    assert smoke is not None
    return smoke, items, costs


def mark(
    services: Services,
    *,
    team_id: str,
    user_id: str,
    name: str,
    target: Target,
    channel_id: str = "",
) -> dict[str, Any]:
    """Make suite `name` the smoke suite of `target`; the ephemeral reply. Raises
    `bot.batches.UnknownSuite` (nothing is stored) or `bot.launch.UnknownAlias`."""
    record = suite_store.get_suite(services.db, name)
    if record is None:
        raise UnknownSuite(name)
    target_type, target_id, label = resolve_target(services, team_id, target)
    db = services.db
    with db.atomic():
        previous = suite_store.mark_smoke_suite(
            db, target_type=target_type, target_id=target_id, suite=record.name, user_id=user_id
        )
        done_by = audit.Where(user_id, team_id, channel_id)
        audit.smoke_suite_set(db, record.name, target_type, target_id, done_by)
    where = target_text(target_type, target_id, alias=label if target.kind == "alias" else "")
    cases = len(record.cases)
    text = (
        f"Suite `{escape(record.name)}` ({plural(cases, 'case')}) is now the "
        f"smoke suite of {where}: `/testcall smoke {escape(target.label)}` runs it, each case "
        "once with no stagger."
    )
    if previous is not None and previous.suite != record.name:
        text += f" It replaces `{escape(previous.suite)}`."
    return decided(text)
