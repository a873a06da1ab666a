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
from storage.models import FlagRecord, GradeRecord, RunRecord


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


def run_card(run: RunRecord, grade: GradeRecord | None, threshold: float) -> dict[str, Any]:
    """The one message in the channel for a run, edited in place as it moves on."""
    target = target_text(run.target_type, run.target_id, run.target_name)
    headline = f"🧪 Test call · {target} · {direction_text(run.direction, run.mode)}"
    prompt = escape(trim(run.scenario_prompt, 600))
    started = f"Started by {mention(run.started_by)} at {clock(run.created_at)}"
    extra = f"caller id {escape(run.caller_number)}" if run.caller_number else ""
    status = status_line(run, grade, threshold)
    blocks = [
        section(f"*{headline}*\n“{prompt}”"),
        context(started, f"run {run.run_id}", extra),
        section(status),
    ]
    fallback = f"Test call on {target}: {status}"
    return message(fallback, blocks)


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
    title = escape(trim(flag.title, 120))
    return (
        f"🚩 Flagged for review by {mention(flag.user_id)} · {flag.severity} · “{title}”"
        f" · {clock(flag.created_at)}"
    )


def run_result(
    run: RunRecord,
    grade: GradeRecord | None,
    transcript: list[dict[str, Any]] | None,
    threshold: float,
    flag: FlagRecord | None = None,
) -> dict[str, Any]:
    """The thread reply with the outcome of one run and what to do next."""
    headline = _result_headline(run, grade, threshold)
    blocks: list[dict[str, Any]] = [section(headline)]
    if run.status == "failed":
        blocks.append(
            section(
                "What to try: check that the agent is published and reachable"
                + (" over SIP" if run.mode == "sip" else "")
                + ", then press *Run again*."
            )
        )
    else:
        blocks.append(section(snippet(transcript or [])))
        blocks.append(section(_grader_line(grade)))
    buttons = []
    if run.call_id is not None and flag is None:
        buttons.append(button("Flag for review", ids.FLAG_RUN, str(run.run_id)))
    if run.call_id is not None and transcript:
        buttons.append(button("Transcript", ids.SHOW_TRANSCRIPT, str(run.run_id)))
    buttons.append(button("Run again", ids.RUN_AGAIN, str(run.run_id)))
    if flag is not None and flag.status == "filed":
        blocks.append(context(flag_record(flag)))
    blocks.append(actions(f"result:{run.run_id}", *buttons))
    fallback = headline.replace("*", "")
    if run.status != "failed" and grade is not None and grade.score is not None:
        fallback += f" (run {run.run_id})"
    return message(fallback, blocks)
