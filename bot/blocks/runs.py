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
from bot.expectations import Expected
from bot.routing import Route, encode
from bot.verdicts import ResultKind, ResultVerdict, outcome_of, result_verdict
from storage.models import FlagRecord, GradeRecord, Launch, RunRecord

# Reasons a failed verdict lists before "and N more".
MAX_REASONS = 3


def _not_graded(grade: GradeRecord | None) -> str:
    """Why a finished grading gave no score ("" while grading is still under way)."""
    if grade is None or grade.score is not None or grade.status in {"", "pending"}:
        return ""
    return grade.status.replace("_", " ")


def verdict_of(
    run: RunRecord,
    grade: GradeRecord | None,
    threshold: float,
    transcript: list[dict[str, Any]] | None = None,
    expected: Expected | None = None,
) -> ResultVerdict:
    """The one verdict of a finished run: against its case's expectation, else the threshold."""
    outcome = outcome_of(run, grade, transcript)
    return result_verdict(expected or Expected(), outcome, threshold)


def _figures(run: RunRecord, grade: GradeRecord | None, *, reason: bool = False) -> list[str]:
    score = percent(grade.score) if grade is not None else ""
    parts = [score, duration(run.duration_seconds), money(run.cost_cents)]
    if reason:
        parts.append(end_reason(run.end_reason))
    return [part for part in parts if part]


def verdict_line(
    run: RunRecord,
    grade: GradeRecord | None,
    verdict: ResultVerdict,
    *,
    reason: bool = False,
) -> str:
    """`✅ Passed · 92% · 0:54 · $0.16`, `❌ Failed · score 64% < 80% · …`, escaped mrkdwn."""
    if run.status == "failed" and verdict.kind is ResultKind.FAILED:
        why = trim(run.error_message or "no reason given", 500)
        return f"❌ Failed · the call failed: {escape(why)}"
    figures = _figures(run, grade, reason=reason)
    if verdict.kind is ResultKind.PASSED:
        head = ["✅ Passed"]
    elif verdict.kind is ResultKind.FAILED:
        reasons = [escape(trim(text, 200)) for text in verdict.reasons[:MAX_REASONS]]
        if len(verdict.reasons) > MAX_REASONS:
            reasons.append(f"and {len(verdict.reasons) - MAX_REASONS} more")
        head = ["❌ Failed", *reasons]
        if any(text.startswith("score ") for text in verdict.reasons):
            figures = figures[1:] if grade is not None and grade.score is not None else figures
    elif verdict.kind is ResultKind.NOT_GRADED:
        why = _not_graded(grade)
        head = [f"➖ Not graded ({escape(why)})" if why else "➖ Not graded"]
    else:
        head = ["⏳ Not graded yet"]
    return " · ".join([*head, *figures])


def status_line(run: RunRecord, grade: GradeRecord | None, threshold: float) -> str:
    """The state of a run on its card and in App Home: its verdict once it is over."""
    if run.status == "queued":
        return "⏳ Queued"
    if run.status == "in_progress":
        since = clock(run.started_at)
        return f"📞 In progress · since {since}" if since else "📞 In progress"
    verdict = verdict_of(run, grade, threshold)
    if verdict.kind is ResultKind.GRADING:
        return " · ".join(["⏳ Completed, waiting for the grade", *_figures(run, grade)])
    return verdict_line(run, grade, verdict)


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


def _grader_line(grade: GradeRecord | None, verdict: ResultVerdict) -> str | None:
    """The grader's own view, below the verdict and not a second verdict."""
    if verdict.kind is ResultKind.GRADING:
        return "*Grader's opinion*  not in yet; this reply is updated when it arrives."
    if grade is None:
        return None
    outcome = escape(grade.call_outcome.replace("_", " ")) if grade.call_outcome else ""
    reason = escape(trim(grade.outcome_reasoning or grade.summary, 400))
    said = " · ".join(part for part in (outcome, f"“{reason}”" if reason else "") if part)
    return f"*Grader's opinion*  {said}" if said else None


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
    expected: Expected | None = None,
) -> dict[str, Any]:
    """The thread reply with the one verdict of a run and what to do next. In a batch,
    `heading` (mrkdwn: the case name or prompt) comes first and `expected` is what the case
    expects; otherwise the run passes when it scored at or above the threshold."""
    verdict = verdict_of(run, grade, threshold, transcript, expected)
    headline = verdict_line(run, grade, verdict, reason=True)
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
        grader = _grader_line(grade, verdict)
        if grader:
            blocks.append(section(grader))
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
    # The notification people see first: it carries the verdict, never a ✅ for a failure.
    fallback = f"{headline.replace('*', '')} (run {run.run_id})"
    if heading:
        fallback = f"{heading.replace('*', '')}: {fallback}"
    return message(fallback, blocks)
