"""Launching a paid test call: consent first, the card before the money, exactly one run.

A launch is recorded when the confirmation is shown and claimed atomically by the first Start
click. ThunderPhone has no idempotency key, so a create is never retried; when its answer is
unclear, the launch is marked `unknown` and the run is looked for instead (`reconcile_launches`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot.blocks import replies
from bot.blocks.common import clock, escape
from bot.blocks.runs import launch_card
from bot.commands import RunCommand, Target
from bot.publish import delete_message, show_launch_card, tell
from bot.runs import apply_run
from bot.services import Services
from bot.thunderphone import Run, TestCallRequest, ThunderPhoneError, ThunderPhoneRejected
from storage import aliases, launches
from storage import runs as run_store
from storage.db import now_iso
from storage.models import Launch, RunRecord

log = logging.getLogger(__name__)

# Consent is given to a confirmation someone just read, not to one found days later.
CONFIRMATION_LIFETIME = timedelta(hours=1)
# A launch still `launching` this long after the click lost its answer (the bot stopped):
# well past the longest a card post plus a create can take.
ANSWER_TIMEOUT = timedelta(minutes=3)
# How far apart the click and ThunderPhone's record of the run may be (clocks differ a little).
CLOCK_SLACK = timedelta(seconds=30)
# How long an unclear launch is looked for before it is called off.
SEARCH_WINDOW = timedelta(minutes=10)
STARTING = "⏳ Starting…"
CHECKING = "⏳ Checking with ThunderPhone whether this run started…"


class UnknownAlias(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def resolve_target(services: Services, team_id: str, target: Target) -> tuple[str, int, str]:
    """(target_type, target_id, the label the person used)."""
    if target.kind != "alias":
        assert target.id is not None
        return target.kind, target.id, target.label
    alias = aliases.find_alias(services.db, team_id, str(target.alias))
    if alias is None:
        raise UnknownAlias(str(target.alias))
    return alias.target_type, alias.target_id, alias.name


def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: RunCommand
) -> dict[str, Any]:
    """Record what would be launched; return the confirmation that asks for consent."""
    target_type, target_id, label = resolve_target(services, team_id, command.target)
    return _propose(
        services,
        Launch(
            id=launches.new_launch_id(),
            team_id=team_id,
            channel_id=channel_id,
            user_id=user_id,
            target_type=target_type,
            target_id=target_id,
            target_label=label,
            direction=command.direction,
            mode=command.mode,
            caller_number=command.caller,
            scenario_prompt=command.prompt,
        ),
    )


def propose_again(
    services: Services, run: RunRecord, *, user_id: str, channel_id: str
) -> dict[str, Any]:
    """The same test call again, through the same consent step."""
    return _propose(
        services,
        Launch(
            id=launches.new_launch_id(),
            team_id=run.team_id,
            channel_id=channel_id,
            user_id=user_id,
            target_type=run.target_type,
            target_id=run.target_id,
            target_label=run.target_name,
            direction=run.direction,
            mode=run.mode,
            caller_number=run.caller_number,
            scenario_prompt=run.scenario_prompt,
        ),
    )


def _propose(services: Services, launch: Launch) -> dict[str, Any]:
    stored = launches.save_launch(services.db, launch)
    costs = run_store.recent_costs(services.db, launch.target_type, launch.target_id)
    return replies.confirmation(stored, costs)


def cancel(services: Services, launch_id: str, user_id: str) -> dict[str, Any]:
    if launches.claim_launch(services.db, launch_id, to="cancelled", by=user_id):
        return replies.decided("Cancelled. Nothing was started or charged.")
    return _already_decided(services, launch_id)


async def start(services: Services, launch_id: str, user_id: str) -> dict[str, Any]:
    """Launch the run behind a confirmation, at most once however often Start is pressed.

    Returns what replaces the confirmation for the person who clicked.
    """
    db = services.db
    if not launches.claim_launch(
        db, launch_id, to="launching", by=user_id, created_after=now_iso(CONFIRMATION_LIFETIME)
    ):
        if launches.claim_launch(db, launch_id, to="expired", by=user_id):
            return replies.decided(
                "This confirmation is more than an hour old, so I didn't start anything. "
                "Run the command again to get a fresh one."
            )
        return _already_decided(services, launch_id)
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    request = _request(launch)
    # The card goes up before any money is spent: where the bot cannot post, nothing starts.
    card_ts, problem = await show_launch_card(services, launch, launch_card(launch, STARTING))
    if card_ts is None:
        launches.finish_launch(db, launch_id, status="failed", error=f"cannot post: {problem}")
        return replies.decided(
            f"I can't post in this channel ({escape(problem)}), so I didn't start the test "
            "call. Invite me with `/invite @thunderbot`, or run the command in a channel I'm in."
        )
    launches.set_launch_card(db, launch_id, card_ts)
    launch = launch.model_copy(update={"card_ts": card_ts})
    try:
        created = await services.thunderphone.create_test_call(request)
    except ThunderPhoneRejected as error:
        log.warning("ThunderPhone refused launch %s: %s", launch_id, error)
        launches.finish_launch(db, launch_id, status="failed", error=error.user_message)
        await delete_message(services, launch.channel_id, card_ts)
        return replies.decided(f"Couldn't start the test call. {escape(error.user_message)}")
    except ThunderPhoneError as error:
        # The request may have reached ThunderPhone: look for the run rather than invite a
        # second paid one.
        log.warning("unclear answer to launch %s: %s", launch_id, error)
        if launches.finish_launch(db, launch_id, status="unknown", error=str(error)):
            await show_launch_card(services, launch, launch_card(launch, CHECKING))
        return replies.decided(
            f"ThunderPhone didn't answer clearly ({escape(_reason(error))}), so I can't tell yet "
            "whether the test call started. I'm checking: the card in the channel will show the "
            "run if it did. Please don't start it again until then."
        )
    await adopt(services, launch, created)
    launch = launches.get_launch(db, launch_id)
    assert launch is not None
    return replies.started(launch, created.id)


def _request(launch: Launch) -> TestCallRequest:
    return TestCallRequest(
        target_type=launch.target_type,  # type: ignore[arg-type]
        target_id=launch.target_id,
        direction=launch.direction,  # type: ignore[arg-type]
        consent_to_charge=True,
        scenario_prompt=launch.scenario_prompt,
        mode=launch.mode,  # type: ignore[arg-type]
        target_number=launch.caller_number,
    )


def _reason(error: ThunderPhoneError) -> str:
    if error.status is None:
        return error.detail or "no answer"
    return f"HTTP {error.status}"


def _already_decided(services: Services, launch_id: str) -> dict[str, Any]:
    launch = launches.get_launch(services.db, launch_id)
    if launch is None:
        return replies.decided("This confirmation has expired. Run the command again.")
    return replies.already_decided(launch)


async def adopt(services: Services, launch: Launch, created: Run) -> None:
    """Record the run ThunderPhone created for a launch, then apply all it says about the run.

    The first caller records it (a click's own answer, or the search for a lost one); a later
    caller only brings the messages up to date.
    """
    run = RunRecord(
        run_id=created.id,
        launch_id=launch.id,
        team_id=launch.team_id,
        channel_id=launch.channel_id,
        card_ts=launch.card_ts,
        started_by=launch.decided_by or launch.user_id,
        target_type=launch.target_type,
        target_id=launch.target_id,
        target_name=created.target_name or created.agent_name or "",
        direction=launch.direction,
        mode=launch.mode,
        caller_number=launch.caller_number,
        scenario_prompt=launch.scenario_prompt,
        status="queued",
        created_at=launch.decided_at or "",
    )
    async with services.run_lock(run.run_id):
        with services.db.atomic():
            if run_store.get_run(services.db, run.run_id) is None and launches.finish_launch(
                services.db, launch.id, status="launched", run_id=run.run_id
            ):
                run_store.save_run(services.db, run)
    await apply_run(services, created)


async def reconcile_launches(services: Services, recent: list[Run], *, complete: bool) -> None:
    """Find the runs of launches whose answer was lost; call off those never found.

    `recent` is ThunderPhone's run list, newest first; `complete` says it reaches back past
    every unsettled launch, so a launch missing from it really has no run.
    """
    db = services.db
    for launch in launches.unsettled_launches(db, decided_before=now_iso(ANSWER_TIMEOUT)):
        match = _closest_run(services, launch, recent)
        if match is not None:
            log.info("launch %s found as run %s", launch.id, match.id)
            await adopt(services, launch, match)
        elif complete and (launch.decided_at or "") < now_iso(SEARCH_WINDOW):
            await _call_off(services, launch)


def _closest_run(services: Services, launch: Launch, recent: list[Run]) -> Run | None:
    """The run created for this launch: same request, created within moments of the click."""
    if not launch.decided_at:
        return None
    clicked = datetime.fromisoformat(launch.decided_at)
    latest = clicked + ANSWER_TIMEOUT + CLOCK_SLACK
    candidates = [
        run
        for run in recent
        if run.created_at is not None
        and clicked - CLOCK_SLACK <= run.created_at <= latest
        and run.target_type == launch.target_type
        and run.target_id == launch.target_id
        and run.scenario_prompt == launch.scenario_prompt
        and (run.direction or "outbound") == launch.direction
        and (run.mode or "bot") == launch.mode
        and (not launch.caller_number or run.target_number == launch.caller_number)
        and run_store.get_run(services.db, run.id) is None
    ]
    return min(candidates, key=lambda run: abs(run.created_at - clicked), default=None)  # type: ignore[operator]


async def _call_off(services: Services, launch: Launch) -> None:
    reason = "ThunderPhone has no record of this run, so nothing was charged"
    launches.finish_launch(services.db, launch.id, status="failed", error=reason)
    if launch.card_ts:
        await show_launch_card(
            services, launch, launch_card(launch, f"❌ Did not start · {reason}.")
        )
    await tell(
        services,
        launch.channel_id,
        launch.decided_by or launch.user_id,
        f"The test call you started at {clock(launch.decided_at)} did not start: {reason}. "
        "Run the command again if you still need it.",
        thread_ts=launch.card_ts,
    )
