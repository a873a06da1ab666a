"""What a compare shows: the confirmation with the total, the card with a row per target (the
best of each column starred once every run is done), and the words around its chart."""

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
    escape,
    escaped,
    last_runs,
    mention,
    message,
    money,
    percent,
    plural,
    section,
    target_plain,
    target_text,
    trim,
)
from bot.blocks.replies import decided, decided_earlier, not_started, started_runs
from bot.compare import (
    CompareAlreadyDecided,
    CompareOutcome,
    CompareStarted,
    CompareView,
    Proposal,
    TargetFigures,
)
from bot.routing import Route, encode
from storage.models import BatchRecord, CompareRecord

PROMPTS_SHOWN = 3
PART_SIZE = 20
STAR = "★"
LABEL_WIDTH = 32  # `Support agent (agent 12)`: a longer name is shortened, never its id
# The table's columns: heading, and the `best_marks` column it is starred on (if any).
TABLE_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("target", None),
    ("tier", None),
    ("runs", None),
    ("score", "score"),
    ("duration p50/p95", "duration"),
    ("latency p50/p95", "latency"),
    ("cost", "cost"),
    ("failed", "failures"),
)
NONE = "–"


def _batch_target(batch: BatchRecord) -> str:
    return target_text(
        batch.target_type, batch.target_id, batch.target_name, alias=batch.target_label
    )


def _what(compare: CompareRecord, cases: int) -> str:
    """`suite refunds (2 cases × 3)` or `“Ask about refunds.” × 3`, escaped."""
    repeat = f" × {compare.repeat}" if compare.repeat > 1 else ""
    if compare.suite is not None:
        return f"suite {escape(compare.suite)} ({plural(cases, 'case')}{repeat})"
    return f"“{escape(trim(compare.prompt or '', 120))}”{repeat}"


# ---------------------------------------------------------------------------------------------
# The confirmation


def _estimate(batch: BatchRecord, runs: int, costs: list[int]) -> tuple[float | None, str]:
    if not costs:
        return None, f"{_batch_target(batch)}: no estimate yet (no finished runs)"
    each = sum(costs) / len(costs)
    return each * runs, (
        f"{_batch_target(batch)}: about {money(each * runs)} ({runs} × {money(each)}, the "
        f"average of {last_runs(len(costs))})"
    )


def confirmation(proposal: Proposal) -> dict[str, Any]:
    """Ask once for every target, with the total; only Start gives consent to charge."""
    compare, items = proposal.compare, proposal.items
    per_target, targets = len(items), len(proposal.targets)
    total = per_target * targets
    calls = plural(total, "test call")
    cases = len(items) // max(compare.repeat, 1)
    first = proposal.targets[0][0]
    estimates = [_estimate(batch, per_target, costs) for batch, costs in proposal.targets]
    known = [amount for amount, _ in estimates if amount is not None]
    if len(known) == targets:
        overall = f"about {money(sum(known))} in all"
    elif known:
        overall = (
            f"about {money(sum(known))} for the {plural(len(known), 'target')} with finished "
            "runs, more for the rest"
        )
    else:
        overall = "no estimate yet: none of these targets has finished runs"
    what = (
        f"*Suite*  {escape(compare.suite)} · {plural(cases, 'case')}"
        + (f" × {compare.repeat}" if compare.repeat > 1 else "")
        if compare.suite is not None
        else f"*Scenario*  “{escape(trim(compare.prompt or '', 300))}”"
        + (f" × {compare.repeat}" if compare.repeat > 1 else "")
    )
    lines = [
        f"*Compare {plural(targets, 'target')}: {calls}?*",
        what,
        "*Targets*  " + " · ".join(_batch_target(batch) for batch, _ in proposal.targets),
        f"*Runs*  {per_target} per target × {plural(targets, 'target')} = {calls} · no stagger "
        "between launches",
        f"*Direction*  {direction_text(first.direction, 'bot')}",
    ]
    if first.caller_number:
        lines.append(f"*Caller id*  {escape(first.caller_number)}")
    lines.append(f"*Cost*  billed at 2× the normal rate · {overall}")
    lines += [f"    • {text}" for _, text in estimates]
    blocks = [section("\n".join(lines))]
    if compare.suite is not None:
        shown = [
            f"• *{escaped(item.case_name or '', 80)}*: “{escape(trim(item.prompt, 200))}”"
            for item in items
            if item.attempt == 1
        ]
        more = cases - PROMPTS_SHOWN
        shown = shown[:PROMPTS_SHOWN] + ([f"_and {more} more_"] if more > 0 else [])
        blocks.append(section("*Scenarios*\n" + "\n".join(shown)))
    if per_target > PART_SIZE:
        parts = -(-per_target // PART_SIZE)
        blocks.append(
            context(f"Each target's runs go to ThunderPhone as {parts} batches of at most 20.")
        )
    route = encode(Route(batch_id=compare.id))
    blocks.append(
        actions(
            f"compare:{compare.id}",
            button(f"Start {calls}", ids.START_COMPARE, route, style="primary"),
            button("Cancel", ids.CANCEL_COMPARE, route),
        )
    )
    fallback = (
        f"Compare {plural(targets, 'target')}: start {calls} ({per_target} on each)? Billed at "
        "2× the normal rate."
    )
    return message(fallback, blocks)


def outcome(result: CompareOutcome) -> dict[str, Any]:
    """What replaces the compare's confirmation after Start or Cancel."""
    match result:
        case CompareStarted(compare, started, total, problems, card_ts):
            by = compare.decided_by or compare.user_id
            problem = "; ".join(problems) or None
            return started_runs(
                by, started, total, problem, channel=compare.channel_id, card_ts=card_ts
            )
        case CompareAlreadyDecided(None):
            return decided("This confirmation has expired. Run the command again.")
        case CompareAlreadyDecided(compare):
            assert compare is not None
            return decided_earlier(
                "compare",
                status=compare.status,
                by=compare.decided_by,
                at=compare.decided_at,
                error=compare.error,
            )
    answer = not_started(result, "the compare")
    if answer is not None:
        return answer
    raise AssertionError(result)  # pragma: no cover


# ---------------------------------------------------------------------------------------------
# The card


def _latency(target: TargetFigures) -> str:
    latency = target.latency
    if latency.p50_ms is None or latency.p95_ms is None:
        return NONE
    return f"{latency.p50_ms / 1000:.2f} / {latency.p95_ms / 1000:.2f} s"


def _durations(target: TargetFigures) -> str:
    if target.duration_p50 is None or target.duration_p95 is None:
        return NONE
    return f"{duration(target.duration_p50)} / {duration(target.duration_p95)}"


def _runs(target: TargetFigures, finished: bool) -> str:
    if not finished:
        return f"{target.done}/{target.planned}"
    return str(target.done) if target.done == target.planned else f"{target.done}/{target.planned}"


def _tier(target: TargetFigures, view: CompareView) -> str:
    """The tier, read once every run is done; "–" when it could not be read."""
    if target.tier:
        return target.tier
    return NONE if view.compare.chart_at is not None else "…"


def _row_label(target: TargetFigures) -> str:
    """The target as the table names it, within LABEL_WIDTH: the name is shortened to fit,
    never the `(agent 12)` that says which target it is."""
    reference = target_plain(target.target_type, target.target_id)
    room = LABEL_WIDTH - len(reference) - 3  # " (" and ")"
    name = trim(target.name, room) if target.name and room > 1 else ""
    return target_plain(target.target_type, target.target_id, name)


def _cells(target: TargetFigures, view: CompareView) -> list[str]:
    """A target's row as plain text (escaped when the table is put together)."""
    finished = view.finished
    return [
        _row_label(target),
        trim(_tier(target, view), 20),
        _runs(target, finished),
        percent(target.mean_score) or NONE,
        _durations(target),
        _latency(target),
        money(target.mean_cost_cents) or NONE,
        str(target.failures) if target.done else NONE,
    ]


def table(view: CompareView) -> str:
    """The table as monospace text, a row per target, ★ on the best of each column."""
    rows = [[heading for heading, _ in TABLE_COLUMNS]]
    rows += [_cells(target, view) for target in view.targets]
    for column, (_, judged) in enumerate(TABLE_COLUMNS):
        marked = view.best.get(judged, frozenset()) if judged else frozenset()
        if not marked:
            continue
        for index in range(len(view.targets)):
            rows[index + 1][column] += f" {STAR}" if index in marked else "  "
    widths = [max(len(row[column]) for row in rows) for column in range(len(TABLE_COLUMNS))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(escape(line.rstrip()) for line in lines)


def _status(view: CompareView) -> str:
    compare = view.compare
    if compare.status == "launching" and not view.started:
        return (
            f"⏳ Starting {plural(view.planned, 'run')} on {plural(len(view.targets), 'target')}…"
        )
    if view.finished and not view.started:
        return "❌ No run started."
    spent = sum(target.spent_cents for target in view.targets)
    if view.finished:
        failed = sum(target.failures for target in view.targets)
        text = f"🏁 Done · {plural(view.done, 'run')} on {plural(len(view.targets), 'target')}"
        if failed:
            text += f" · {failed} failed"
        if spent:
            text += f" · {money(spent)} in all"
        return text + f" · {STAR} the best on each column"
    cells = 5
    filled = min(view.done * cells // view.planned, cells) if view.planned else 0
    text = f"{'█' * filled}{'░' * (cells - filled)} {view.done}/{plural(view.planned, 'run')} done"
    if spent:
        text += f" · {money(spent)} so far"
    return text


def _notes(view: CompareView) -> list[str]:
    notes = []
    for target in view.targets:
        label = escape(target.label)
        for reason in target.not_started:
            notes.append(f"⚠️ Some runs on {label} did not start: {escape(trim(reason, 300))}")
        if target.unclear:
            notes.append(f"⏳ Checking with ThunderPhone whether the runs on {label} started…")
        if target.grading:
            notes.append(f"⏳ {plural(target.grading, 'run')} on {label} still grading")
        left_out = target.latency.left_out
        if left_out:
            notes.append(
                f"Latency on {label} leaves out {plural(left_out, 'turn')} without timestamps "
                f"({target.latency.replies} measured)"
            )
    return notes


def compare_card(view: CompareView) -> dict[str, Any]:
    """The one message in the channel for a compare, edited in place as runs land."""
    compare = view.compare
    what = _what(compare, view.cases)
    targets = plural(len(view.targets), "target")
    headline = f"*⚖️ Compare · {what} · {targets}*"
    started = (
        f"Started by {mention(compare.decided_by or compare.user_id)} at "
        f"{clock(compare.decided_at)}"
    )
    status = _status(view)
    blocks: list[dict[str, Any]] = [
        section(headline),
        context(started, f"compare {compare.id[:8]}"),
        section(status),
        section(f"```\n{table(view)}\n```"),
    ]
    legend = (
        "score: mean of graded runs · duration, latency: p50 / p95 · latency: from the end of "
        "a caller turn to the start of the agent's reply · cost: mean billed per call · "
        "failed: runs that did not pass"
    )
    blocks.append(context(legend))
    notes = _notes(view)
    if view.finished and compare.chart_error:
        notes.append(f"⚠️ I couldn't share the chart here ({escape(compare.chart_error)}).")
    if notes:
        blocks.append(context("\n".join(notes)))
    fallback = f"Compare · {what} · {targets}: {status}"
    return message(fallback.replace("*", ""), blocks)


def target_heading(label: str, heading: str | None) -> str:
    """A run's reply heading in a compare's thread: its target (`target_plain`) first."""
    target = f"*{escape(label)}*"
    return f"{target} · {heading}" if heading else target


# ---------------------------------------------------------------------------------------------
# The chart's words


def chart_title(view: CompareView) -> str:
    compare = view.compare
    if compare.suite is not None:
        return f"Score against duration · suite {compare.suite}"
    return "Score against duration"


def chart_comment(view: CompareView) -> str:
    runs = sum(len(target.points) for target in view.targets)
    return (
        f"⚖️ Score against duration · {_what(view.compare, view.cases)} · "
        f"{plural(runs, 'scored run')} on {plural(len(view.targets), 'target')}. The large "
        "rings mark each target's median duration and mean score."
    )


def chart_alt_text(view: CompareView) -> str:
    parts = []
    for target in view.targets:
        if not target.points:
            parts.append(f"{target.label}: no scored runs")
            continue
        parts.append(
            f"{target.label}{f' · {target.tier}' if target.tier else ''}: "
            f"{plural(len(target.points), 'run')}, mean score {percent(target.mean_score)}, "
            f"median duration {duration(target.duration_p50)}"
        )
    return "Scatter chart of each run's score against its call duration, a colour per target. " + (
        "; ".join(parts)
    )
