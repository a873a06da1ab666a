"""The live card of a run (in the channel) and its result (a reply in the card's thread)."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.blocks.common import (
    actions,
    button,
    clock,
    context,
    direction_text,
    duration,
    end_reason,
    escape,
    mention,
    message,
    money,
    percent,
    section,
    target_text,
    trim,
)
from bot.blocks.turns import snippet
from bot.routing import Route, encode
from storage.models import FlagRecord, GradeRecord, Launch, RunRecord


def _not_graded(grade: GradeRecord | None) -> str:
    """Why a finished grading gave no score ("" while grading is still under way)."""
    if grade is None or grade.score is not None or grade.status in {"", "pending"}:
        return ""
    return f"not graded ({grade.status.replace('_', ' ')})"


def _score_text(grade: GradeRecord | None, threshold: float) -> tuple[str, bool]:
    """('92%', below_threshold), ('grading…', False) or ('not graded (…)', False)."""
    if grade is None or grade.score is None:
        return _not_graded(grade) or "grading…", False
    return percent(grade.score), grade.score < threshold


def status_line(run: RunRecord, grade: GradeRecord | None, threshold: float) -> str:
    if run.status == "queued":
        return "⏳ Queued"
    if run.status == "in_progress":
        since = clock(run.started_at)
        return f"📞 In progress · since {since}" if since else "📞 In progress"
    if run.status == "failed":
        return f"❌ Failed · {escape(trim(run.error_message or 'no reason given', 500))}"
    score, below = _score_text(grade, threshold)
    icon = "⚠️" if below else "✅"
    if below:
        score = f"{score} (below {percent(threshold)})"
    parts = [f"{icon} Completed", score, duration(run.duration_seconds), money(run.cost_cents)]
    return " · ".join(part for part in parts if part)


def _card(
    *,
    target: str,
    direction: str,
    mode: str,
    prompt: str,
    started_by: str,
    started_at: str | None,
    reference: str,
    caller_number: str | None,
    status: str,
) -> dict[str, Any]:
    headline = f"🧪 Test call · {target} · {direction_text(direction, mode)}"
    started = f"Started by {mention(started_by)} at {clock(started_at)}"
    extra = f"caller id {escape(caller_number)}" if caller_number else ""
    blocks = [
        section(f"*{headline}*\n“{escape(trim(prompt, 600))}”"),
        context(started, reference, extra),
        section(status),
    ]
    return message(f"Test call on {target}: {status}", blocks)


def run_card(run: RunRecord, grade: GradeRecord | None, threshold: float) -> dict[str, Any]:
    """The one message in the channel for a run, edited in place as it moves on."""
    return _card(
        target=target_text(run.target_type, run.target_id, run.target_name),
        direction=run.direction,
        mode=run.mode,
        prompt=run.scenario_prompt,
        started_by=run.started_by,
        started_at=run.created_at,
        reference=f"run {run.run_id}",
        caller_number=run.caller_number,
        status=status_line(run, grade, threshold),
    )


def launch_card(launch: Launch, status: str) -> dict[str, Any]:
    """The card before ThunderPhone has answered: it goes up before any money is spent."""
    return _card(
        target=target_text(launch.target_type, launch.target_id),
        direction=launch.direction,
        mode=launch.mode,
        prompt=launch.scenario_prompt,
        started_by=launch.decided_by or launch.user_id,
        started_at=launch.decided_at,
        reference="run not started yet",
        caller_number=launch.caller_number,
        status=status,
    )


def _result_headline(run: RunRecord, grade: GradeRecord | None, threshold: float) -> str:
    if run.status == "failed":
        return f"❌ Failed · {escape(trim(run.error_message or 'no reason given', 500))}"
    score, below = _score_text(grade, threshold)
    tail = [duration(run.duration_seconds), money(run.cost_cents), end_reason(run.end_reason)]
    if below:
        head = f"⚠️ Score {score} · below the {percent(threshold)} threshold"
    else:
        head = f"✅ Completed · score {score}"
    return " · ".join([head, *(part for part in tail if part)])


def _grader_line(grade: GradeRecord | None) -> str:
    if grade is None or grade.score is None:
        reason = _not_graded(grade)
        if reason and grade is not None and grade.summary:
            reason += f" · “{escape(trim(grade.summary, 400))}”"
        return f"*Grader:*  {reason or 'waiting for the grade…'}"
    verdict = escape(grade.call_outcome or grade.status or "graded")
    reason = escape(trim(grade.outcome_reasoning or grade.summary, 400))
    return f"*Grader:*  {verdict} · “{reason}”" if reason else f"*Grader:*  {verdict}"


def flag_record(flag: FlagRecord) -> str:
    """What replaces *Flag for review*: who flagged it, how severe, the title and when, then on
    the next line the description as the person typed it (escaped, on one line, shortened so
    the whole stays within a context element's 2000 characters)."""
    if flag.status != "filed":
        return f"🚩 {mention(flag.user_id)} is flagging this call for review…"
    title = escape(trim(flag.title, 120))
    record = (
        f"🚩 Flagged for review by {mention(flag.user_id)} · {flag.severity} · “{title}”"
        f" · {clock(flag.created_at)}"
    )
    description = escape(" ".join(flag.description.split()))
    if not description:
        return record
    room = 2000 - len(record) - 1
    if len(description) > room:
        cut = description[: room - 1]
        entity = cut.rfind("&")
        if entity != -1 and ";" not in cut[entity:]:  # never half of `&amp;`
            cut = cut[:entity]
        description = cut.rstrip() + "…"
    return f"{record}\n{description}"


def run_result(
    run: RunRecord,
    grade: GradeRecord | None,
    transcript: list[dict[str, Any]] | None,
    threshold: float,
    flag: FlagRecord | None = None,
    *,
    heading: str | None = None,
) -> dict[str, Any]:
    """The thread reply with the outcome of one run and what to do next. In a batch,
    `heading` (mrkdwn: the case name and, for a suite case, its checks) comes first."""
    headline = _result_headline(run, grade, threshold)
    blocks: list[dict[str, Any]] = [section(f"{heading}\n{headline}" if heading else headline)]
    if run.status == "failed":
        blocks.append(
            section(
                "What to try: check that the agent is published and reachable"
                + (" over SIP" if run.mode == "sip" else "")
                + ", then press *Run again*."
            )
        )
    else:
        blocks.append(
            section(
                snippet(transcript)
                if transcript
                else "_The transcript isn't available yet; it will appear here._"
            )
        )
        blocks.append(section(_grader_line(grade)))
    route = encode(Route(run_id=run.run_id))
    buttons = []
    if run.call_id is not None and flag is None:
        buttons.append(button("Flag for review", ids.FLAG_RUN, route))
    if run.call_id is not None and run.status == "completed":
        buttons.append(button("Transcript", ids.SHOW_TRANSCRIPT, route))
    buttons.append(button("Run again", ids.RUN_AGAIN, route))
    if flag is not None:
        blocks.append(context(flag_record(flag)))
    blocks.append(actions(f"result:{run.run_id}", *buttons))
    fallback = headline.replace("*", "")
    if heading:
        fallback = f"{heading.replace('*', '')}: {fallback}"
    if run.status != "failed" and grade is not None and grade.score is not None:
        fallback += f" (run {run.run_id})"
    return message(fallback, blocks)
