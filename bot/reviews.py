"""Reviewing a finished call: flagging it for a human (a ThunderPhone issue report) and
reading its whole transcript."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot import audit, ids
from bot.blocks import notes
from bot.blocks.modals import SEVERITIES, flag_modal, transcript_modal
from bot.commands import whole_number
from bot.interactive import open_view, permalink, tell, update_view
from bot.publish import refresh, run_card_key, run_result_key
from bot.runs import fetch_transcript
from bot.services import Services
from bot.thunderphone import IssueReportRequest, ThunderPhoneError
from storage import runs as run_store
from storage.db import now_iso
from storage.models import FlagRecord, RunRecord

log = logging.getLogger(__name__)

# A flag still being filed after this long was interrupted (the bot stopped); it may be redone.
STALE_FILING = timedelta(minutes=10)


@dataclass(frozen=True)
class FlagInput:
    """What the person typed into the flag modal, unchecked."""

    title: str
    severity: str
    description: str
    turn: str


@dataclass(frozen=True)
class FlagForm:
    title: str
    severity: str
    description: str
    turn: int | None


def transcript_turns(services: Services, run: RunRecord) -> list[dict[str, Any]]:
    return run_store.get_transcript(services.db, run.call_id) or []


def check_flag(
    services: Services, run: RunRecord, given: FlagInput
) -> tuple[FlagForm | None, dict[str, str]]:
    """The flag as filed, or problems keyed by the modal's input blocks."""
    turns = len(transcript_turns(services, run))
    errors: dict[str, str] = {}
    title = " ".join(given.title.split())
    if not title:
        errors[ids.FLAG_TITLE] = "Give the report a title."
    elif len(title) > 255:
        errors[ids.FLAG_TITLE] = f"Keep the title under 255 characters (it is {len(title)})."
    if given.severity not in SEVERITIES:
        errors[ids.FLAG_SEVERITY] = "Choose info, warning or critical."
    turn: int | None = None
    if given.turn.strip():
        text = given.turn.strip()
        number = whole_number(text)
        if number is None or not 1 <= number <= max(turns, 1):
            span = f"from 1 to {turns}" if turns else "a turn number"
            errors[ids.FLAG_TURN] = f"Enter {span}, as numbered in the transcript."
        else:
            turn = number
    if errors:
        return None, errors
    return FlagForm(title, given.severity, given.description.strip(), turn), {}


async def _open(
    services: Services,
    run: RunRecord,
    user_id: str,
    trigger_id: str,
    view: dict[str, Any],
    response_url: str | None,
) -> str | None:
    """Open a modal; the view id, or None after telling the person it could not be opened."""
    view_id = await open_view(services, trigger_id, view)
    if view_id is None:
        await _tell(services, run, user_id, notes.window_not_opened(), response_url)
    return view_id


async def _tell(
    services: Services, run: RunRecord, user_id: str, text: str, response_url: str | None = None
) -> None:
    """A note to one person in the run's thread, through the response URL of their click when
    there is one."""
    thread_ts = services.outbox.ts_of(run_card_key(run.run_id))
    await tell(
        services, run.channel_id, user_id, text, thread_ts=thread_ts, response_url=response_url
    )


async def open_flag_modal(
    services: Services,
    run: RunRecord,
    *,
    user_id: str,
    trigger_id: str,
    response_url: str | None = None,
) -> None:
    view = flag_modal(run, turns=len(transcript_turns(services, run)))
    await _open(services, run, user_id, trigger_id, view, response_url)


async def file_flag(services: Services, run: RunRecord, form: FlagForm, user_id: str) -> None:
    """File the issue report once, then replace the button with a line of record."""
    db = services.db
    assert run.call_id is not None
    flag = FlagRecord(
        run_id=run.run_id,
        call_id=run.call_id,
        user_id=user_id,
        severity=form.severity,
        title=form.title,
        description=form.description,
        turn=form.turn,
    )
    if not run_store.claim_flag(db, flag, stale_before=now_iso(STALE_FILING)):
        existing = run_store.get_flag(db, run.run_id)
        await _tell(
            services, run, user_id, notes.already_flagged(existing.user_id if existing else None)
        )
        return
    permalink = await _permalink(services, run)
    try:
        report = await services.thunderphone.create_issue_report(
            run.call_id, _report(services, run, form, user_id, permalink)
        )
    except ThunderPhoneError as error:
        run_store.delete_flag(db, run.run_id)
        await refresh(services, run.run_id)
        await _tell(services, run, user_id, notes.flag_not_filed(error.user_message))
        return
    except BaseException:
        run_store.delete_flag(db, run.run_id)
        raise
    with db.atomic():
        filed = run_store.update_flag(
            db,
            run.run_id,
            {
                "status": "filed",
                "issue_id": report.id,
                "trace_id": report.trace_id,
                "permalink": permalink,
            },
        )
        audit.flagged(db, run_store.get_run(db, run.run_id) or run, filed)
    await refresh(services, run.run_id)


def _report(
    services: Services, run: RunRecord, form: FlagForm, user_id: str, permalink: str | None
) -> IssueReportRequest:
    entries = transcript_turns(services, run)
    turn_entry = entries[form.turn - 1] if form.turn and form.turn <= len(entries) else {}
    start_ms = turn_entry.get("start_ms")
    return IssueReportRequest(
        title=form.title,
        description=form.description,
        severity=form.severity,  # type: ignore[arg-type]
        timestamp_seconds=int(start_ms) // 1000 if isinstance(start_ms, int) else None,
        failing_turn_index=form.turn - 1 if form.turn else None,
        metadata={
            "slack_permalink": permalink,
            "slack_user_id": user_id,
            "slack_channel_id": run.channel_id,
            "thunderbot_run_id": run.run_id,
        },
    )


async def _permalink(services: Services, run: RunRecord) -> str | None:
    result_ts = services.outbox.ts_of(run_result_key(run.run_id))
    return await permalink(services, run.channel_id, result_ts) if result_ts else None


async def open_transcript(
    services: Services,
    run: RunRecord,
    *,
    user_id: str,
    trigger_id: str,
    response_url: str | None = None,
) -> None:
    """Open the transcript modal; when it was never stored, open first and fill it in."""
    entries = run_store.get_transcript(services.db, run.call_id)
    if entries is not None or run.call_id is None:
        view = transcript_modal(run, entries or [])
        await _open(services, run, user_id, trigger_id, view, response_url)
        return
    # The trigger expires 3 s after the click: open a placeholder before asking ThunderPhone.
    view_id = await _open(
        services, run, user_id, trigger_id, transcript_modal(run, [], loading=True), response_url
    )
    if view_id is None:
        return
    try:
        entries = await fetch_transcript(services, run.call_id)
    except ThunderPhoneError as error:
        entries = []
        log.warning("transcript of call %s not fetched: %s", run.call_id, error)
    await _update(services, view_id, None, transcript_modal(run, entries))


async def show_transcript_page(
    services: Services, run: RunRecord, page: int, *, view_id: str, view_hash: str | None
) -> None:
    view = transcript_modal(run, transcript_turns(services, run), page)
    await _update(services, view_id, view_hash, view)


async def _update(
    services: Services, view_id: str, view_hash: str | None, view: dict[str, Any]
) -> None:
    await update_view(services, view_id, view, view_hash=view_hash)
