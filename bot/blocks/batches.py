"""What a batch shows: the confirmation with the total, the live card, each run's reply under
it, and what a finished suite run says about its baseline."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.batch_report import BatchReport, Row
from bot.blocks.common import (
    actions,
    button,
    clock,
    context,
    direction_text,
    escape,
    escaped,
    last_runs,
    mention,
    message,
    money,
    plural,
    section,
    target_text,
    trim,
)
from bot.blocks.replies import (
    decided,
    decided_earlier,
    not_started,
    started_runs,
    unchecked_note,
    with_tier,
)
from bot.blocks.suites import baseline_label, counts_text, progress_line
from bot.blocks.suites import regression_summary as _regression_summary
from bot.outcomes import (
    BatchAlreadyDecided,
    BatchOutcome,
    BatchStarted,
)
from bot.routing import Route, encode
from storage.models import BatchItem, BatchPart, BatchRecord

PROMPTS_SHOWN = 3


def _size(batch: BatchRecord, items: list[BatchItem]) -> str:
    cases = len(items) // max(batch.repeat, 1)
    size = plural(cases, "case" if batch.suite else "scenario")
    return f"{size} × {batch.repeat}" if batch.repeat > 1 else size


def confirmation(
    batch: BatchRecord,
    items: list[BatchItem],
    costs: list[int],
    *,
    name: str = "",
    tier: str = "",
    unchecked: str = "",
) -> dict[str, Any]:
    """Ask once for the whole batch, with its total; only Start gives consent to charge.
    `name` and `tier` are the agent's, as ThunderPhone gives them, when known; `unchecked`
    says why the target could not be looked up."""
    runs = len(items)
    calls = plural(runs, "test call")
    target = target_text(
        batch.target_type, batch.target_id, name or batch.target_name, alias=batch.target_label
    )
    what = f"Run suite {escape(batch.suite)}: {calls}?" if batch.suite else f"Start {calls}?"
    if batch.kind == "smoke":
        what = f"Start a smoke test of {calls}?"
        if batch.suite:
            what = f"Start a smoke test of {calls} (suite {escape(batch.suite)})?"
    estimate = ""
    if costs:
        each = sum(costs) / len(costs)
        estimate = f" · about {money(each * runs)} in all ({runs} × {money(each)}, the average "
        estimate += f"of {last_runs(len(costs))} on this target)"
    else:
        estimate = " · no estimate yet: this target has no finished runs"
    lines = [
        f"*{what}*",
        f"*Target*  {with_tier(target, tier)}",
        f"*Direction*  {direction_text(batch.direction, 'bot')}",
        f"*Runs*  {_size(batch, items)} · stagger {batch.stagger} s between launches"
        + (" (within each group of 20)" if runs > 20 else ""),
    ]
    if batch.caller_number:
        lines.append(f"*Caller id*  {escape(batch.caller_number)}")
    lines.append(f"*Cost*  billed at 2× the normal rate{estimate}")
    cases = [item for item in items if item.attempt == 1]
    shown = [
        (f"• *{escaped(item.case_name, 80)}*: " if item.case_name else "• ")
        + f"“{escape(trim(item.prompt, 200))}”"
        for item in cases[:PROMPTS_SHOWN]
    ]
    if len(cases) > PROMPTS_SHOWN:
        shown.append(f"_and {len(cases) - PROMPTS_SHOWN} more_")
    if runs > 20:
        shown.append(f"_Sent to ThunderPhone as {-(-runs // 20)} batches of at most 20._")
    route = encode(Route(batch_id=batch.id))
    blocks = [
        section("\n".join(lines)),
        *([unchecked_note(batch.target_type, batch.target_id, unchecked)] if unchecked else []),
        section("*Scenarios*\n" + "\n".join(shown)),
        actions(
            f"batch:{batch.id}",
            button("Start test calls", ids.START_BATCH, route, style="primary"),
            button("Cancel", ids.CANCEL_BATCH, route),
        ),
    ]
    fallback = f"Start {calls} on {target}? Billed at 2× the normal rate."
    if batch.kind == "smoke":
        fallback = f"Start a smoke test of {calls} on {target}? Billed at 2× the normal rate."
    return message(fallback, blocks)


def outcome(result: BatchOutcome) -> dict[str, Any]:
    """What replaces the batch confirmation after Start or Cancel."""
    match result:
        case BatchStarted(batch, started, total, problem, card_ts):
            by = batch.decided_by or batch.user_id
            return started_runs(
                by, started, total, problem, channel=batch.channel_id, card_ts=card_ts
            )
        case BatchAlreadyDecided(None):
            return decided("This confirmation has expired. Run the command again.")
        case BatchAlreadyDecided(batch):
            assert batch is not None
            return decided_earlier(
                "batch",
                status=batch.status,
                by=batch.decided_by,
                at=batch.decided_at,
                error=batch.error,
            )
    answer = not_started(result, "the batch")
    if answer is not None:
        return answer
    raise AssertionError(result)  # pragma: no cover


def _span(report: BatchReport, part: BatchPart) -> str:
    positions = [row.item.position + 1 for row in report.rows if row.item.part == part.part]
    if not positions:
        return "runs"
    return f"runs {positions[0]}–{positions[-1]}" if len(positions) > 1 else f"run {positions[0]}"


def batch_card(report: BatchReport) -> dict[str, Any]:
    """The one message in the channel for a batch, edited in place as its runs land."""
    batch = report.batch
    items = [row.item for row in report.rows]
    target = target_text(batch.target_type, batch.target_id, report.target_name)
    title = f"Suite {escape(batch.suite)}" if batch.suite else "Batch"
    if batch.kind == "smoke":
        title = f"Smoke test · suite {escape(batch.suite)}" if batch.suite else "Smoke test"
    headline = f"*🧪 {title} · {target} · {_size(batch, items)} · stagger {batch.stagger} s*"
    started = (
        f"Started by {mention(batch.decided_by or batch.user_id)} at {clock(batch.decided_at)}"
    )
    blocks: list[dict[str, Any]] = [section(headline), context(started, f"batch {batch.id[:8]}")]
    if batch.status == "launching" and not report.started:
        status = f"⏳ Starting {plural(len(items), 'run')}…"
    else:
        status = progress_line(report.progress)
    blocks.append(section(status))
    verdict = _verdict(report)
    if verdict:
        blocks.append(section(verdict))
    for part in report.not_started:
        reason = escape(trim(part.error or "not sent", 300))
        blocks.append(context(f"⚠️ {_span(report, part).capitalize()} did not start: {reason}"))
    for part in report.unclear:
        blocks.append(
            context(f"⏳ Checking with ThunderPhone whether {_span(report, part)} started…")
        )
    if report.finished and batch.suite and report.started:
        if batch.blessed_by:
            blocks.append(
                context(
                    f"✅ Blessed as baseline by {mention(batch.blessed_by)} · "
                    f"{clock(batch.blessed_at)}"
                )
            )
        else:
            route = encode(Route(batch_id=batch.id))
            blocks.append(
                actions(f"bless:{batch.id}", button("Bless as baseline", ids.BLESS_BATCH, route))
            )
    fallback = f"{title} on {target}: {verdict or status}"
    return message(fallback.replace("*", ""), blocks)


def _verdict(report: BatchReport) -> str:
    if not report.finished or not report.started:
        return ""
    tally = report.progress
    if report.counts is not None:
        counts = report.counts
        head = "❌" if counts.regressed or counts.failed else "✅"
        against = counts_text(counts) if report.baseline else "the first run: no baseline yet"
        return f"{head} {counts.passed} of {plural(counts.cases, 'case')} passed · {against}"
    if tally.failed:
        return f"❌ {tally.failed} of {tally.done} failed"
    return f"✅ All {tally.done} passed" if tally.done != 1 else "✅ Passed"


def run_heading(row: Row, repeat: int) -> str:
    """What heads a run's reply in a batch: its case (or prompt), and which repeat it was.
    The verdict follows on the next line, held against the case's expectation."""
    name = escaped(row.case, 120)
    if row.item.case_name is None:
        name = f"“{name}”"
    heading = f"*{name}*"
    if repeat > 1:
        heading += f" ({row.item.attempt} of {repeat})"
    return heading


def suite_summary(report: BatchReport) -> dict[str, Any]:
    """The reply under a finished suite run: what changed against its baseline."""
    assert report.changes is not None and report.counts is not None
    baseline = report.baseline
    if baseline is None:
        counts = report.counts
        text = (
            f"First run of suite {escape(report.batch.suite or '')} on this target: "
            f"{counts.passed} of {plural(counts.cases, 'case')} passed. Press *Bless as "
            "baseline* to compare later runs with it."
        )
        return message(text.replace("*", ""), [section(text)])
    label = baseline_label(
        f"batch {baseline.id[:8]} of {clock(baseline.decided_at)}",
        baseline.blessed_by,
        baseline.blessed_at,
    )
    elsewhere = baseline.channel_id != report.batch.channel_id
    return _regression_summary(label, report.changes, report.counts, baseline_elsewhere=elsewhere)
