"""Reviewing a finished call: flagging it for a human (a ThunderPhone issue report) and
reading its whole transcript."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError

from bot import ids
from bot.blocks.modals import SEVERITIES, flag_modal, transcript_modal
from bot.publish import publish_run
from bot.services import Services
from bot.thunderphone import IssueReportRequest, ThunderPhoneError
from storage import runs as run_store
from storage.models import FlagRecord, RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FlagForm:
    run_id: int
    title: str
    severity: str
    description: str
    turn: int | None


def _value(state: dict[str, Any], block_id: str) -> Any:
    return state.get(block_id, {}).get(ids.INPUT_VALUE, {})


def run_id_of(view: dict[str, Any]) -> int | None:
    try:
        run_id = json.loads(view.get("private_metadata") or "{}").get("run_id")
    except (ValueError, AttributeError):
        return None
    return int(run_id) if isinstance(run_id, int) else None


def read_flag_form(view: dict[str, Any], turns: int) -> tuple[FlagForm | None, dict[str, str]]:
    """The submitted flag modal as a form, or errors keyed by input block for Slack to show."""
    metadata = json.loads(view.get("private_metadata") or "{}")
    state = view.get("state", {}).get("values", {})
    errors: dict[str, str] = {}
    title = " ".join((_value(state, ids.FLAG_TITLE).get("value") or "").split())
    if not title:
        errors[ids.FLAG_TITLE] = "Give the report a title."
    elif len(title) > 255:
        errors[ids.FLAG_TITLE] = f"Keep the title under 255 characters (it is {len(title)})."
    option = _value(state, ids.FLAG_SEVERITY).get("selected_option") or {}
    severity = option.get("value") or "warning"
    if severity not in SEVERITIES:
        errors[ids.FLAG_SEVERITY] = "Choose info, warning or critical."
    description = (_value(state, ids.FLAG_DESCRIPTION).get("value") or "").strip()
    turn_text = (_value(state, ids.FLAG_TURN).get("value") or "").strip()
    turn: int | None = None
    if turn_text:
        if not turn_text.isdigit() or not 1 <= int(turn_text) <= max(turns, 1):
            span = f"from 1 to {turns}" if turns else "a turn number"
            errors[ids.FLAG_TURN] = f"Enter {span}, as numbered in the transcript."
        else:
            turn = int(turn_text)
    if errors:
        return None, errors
    form = FlagForm(int(metadata["run_id"]), title, severity, description, turn)
    return form, {}


def transcript_turns(services: Services, run: RunRecord) -> list[dict[str, Any]]:
    return run_store.get_transcript(services.db, run.call_id) or []


async def open_flag_modal(services: Services, run: RunRecord, trigger_id: str) -> None:
    turns = len(transcript_turns(services, run))
    view = flag_modal(run, channel_id=run.channel_id, message_ts=run.result_ts or "", turns=turns)
    await services.slack.views_open(trigger_id=trigger_id, view=view)


async def file_flag(services: Services, form: FlagForm, user_id: str) -> None:
    """File the issue report once, then replace the button with a line of record."""
    db = services.db
    run = run_store.get_run(db, form.run_id)
    if run is None or run.call_id is None:
        return
    flag = FlagRecord(
        run_id=run.run_id,
        call_id=run.call_id,
        user_id=user_id,
        severity=form.severity,
        title=form.title,
        description=form.description,
        turn=form.turn,
    )
    if not run_store.claim_flag(db, flag):
        existing = run_store.get_flag(db, run.run_id)
        who = f"<@{existing.user_id}>" if existing else "someone"
        await _tell(services, run, user_id, f"This call was already flagged for review by {who}.")
        return
    permalink = await _permalink(services, run)
    entries = transcript_turns(services, run)
    turn_entry = entries[form.turn - 1] if form.turn and form.turn <= len(entries) else {}
    start_ms = turn_entry.get("start_ms")
    request = IssueReportRequest(
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
    try:
        report = await services.thunderphone.create_issue_report(run.call_id, request)
    except ThunderPhoneError as error:
        run_store.delete_flag(db, run.run_id)
        await _tell(
            services, run, user_id, f"I couldn't file the review flag. {error.user_message}"
        )
        return
    run_store.update_flag(
        db,
        run.run_id,
        {
            "status": "filed",
            "issue_id": report.id,
            "trace_id": report.trace_id,
            "permalink": permalink,
        },
    )
    async with services.run_locks[run.run_id]:
        await publish_run(services, run.run_id)


async def _permalink(services: Services, run: RunRecord) -> str | None:
    if not run.result_ts:
        return None
    try:
        response = await services.slack.chat_getPermalink(
            channel=run.channel_id, message_ts=run.result_ts
        )
    except SlackApiError as error:
        log.warning("no permalink for run %s: %s", run.run_id, error)
        return None
    link = response.get("permalink")
    return str(link) if link else None


async def _tell(services: Services, run: RunRecord, user_id: str, text: str) -> None:
    try:
        await services.slack.chat_postEphemeral(
            channel=run.channel_id, user=user_id, text=text, thread_ts=run.card_ts
        )
    except SlackApiError as error:
        log.warning("could not tell %s: %s (%s)", user_id, text, error)


async def open_transcript(services: Services, run: RunRecord, trigger_id: str) -> None:
    """Open the transcript modal; fetch the transcript first only if it was never stored."""
    entries = run_store.get_transcript(services.db, run.call_id)
    if entries is not None or run.call_id is None:
        view = transcript_modal(run, entries or [])
        await services.slack.views_open(trigger_id=trigger_id, view=view)
        return
    # The trigger expires in 3 s: open first, then fill in.
    opened = await services.slack.views_open(
        trigger_id=trigger_id, view=transcript_modal(run, [], 0) | {"title": _loading()}
    )
    transcript = await services.thunderphone.get_transcript(run.call_id)
    entries = [entry.model_dump(exclude_none=True) for entry in transcript.entries]
    run_store.save_transcript(services.db, run.call_id, entries)
    await services.slack.views_update(
        view_id=opened["view"]["id"], view=transcript_modal(run, entries, 0)
    )


def _loading() -> dict[str, Any]:
    return {"type": "plain_text", "text": "Loading…"}


def transcript_page(services: Services, run: RunRecord, page: int) -> dict[str, Any]:
    return transcript_modal(run, transcript_turns(services, run), page)
