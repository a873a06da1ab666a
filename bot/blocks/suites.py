"""What a suite run shows: the progress line of its batch card, the regression summary replied
under it, and why a case's run fell short."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bot.blocks.common import (
    SECTION_LIMIT,
    context,
    duration,
    escape,
    escaped,
    mention,
    message,
    money,
    parse_time,
    percent,
    plural,
    section,
    trim,
)
from bot.blocks.turns import turn_parts
from bot.verdicts import CaseChange, Counts, Divergence, Progress, Shift, Verdict

BAR_CELLS = 5
MAX_BLOCKS = 50
NAME_LIMIT = 80
REASON_LIMIT = 300
MAX_REASONS = 8
_ORDER = {Verdict.REGRESSED: 0, Verdict.FIXED: 1, Verdict.FLAKY: 2}
_ICONS = {Verdict.REGRESSED: "❌", Verdict.FIXED: "✅", Verdict.FLAKY: "〰️"}


def progress_line(progress: Progress) -> str:
    """`███░░ 3/5 · 2 passed · 1 failed · $0.48 so far · avg 86%`: the bar fills a cell per
    fifth done (whatever the number of runs) and is full only when every run is done."""
    total = max(progress.total, 0)
    filled = min(progress.done * BAR_CELLS // total, BAR_CELLS) if total else 0
    bar = "█" * filled + "░" * (BAR_CELLS - filled)
    parts = [
        f"{bar} {progress.done}/{total}",
        f"{progress.passed} passed",
        f"{progress.failed} failed",
    ]
    if progress.grading:
        parts.append(f"{progress.grading} grading")
    if progress.cost_cents:
        parts.append(f"{money(progress.cost_cents)} so far")
    if progress.avg_score is not None:
        parts.append(f"avg {percent(progress.avg_score)}")
    return " · ".join(parts)


def baseline_label(
    name: str, blessed_by: str | None = None, blessed_at: str | datetime | None = None
) -> str:
    """`run 41, blessed by @li on Nov 20` as mrkdwn: `name` is escaped, the person is a
    mention and the day shows in each reader's time zone."""
    label = escape(name)
    if blessed_by:
        label += f", blessed by {mention(blessed_by)}"
    moment = parse_time(blessed_at)
    if moment is not None:
        day = moment.astimezone(UTC)
        fallback = f"{day:%b} {day.day}"
        label += f" on <!date^{int(moment.timestamp())}^{{date_short}}|{fallback}>"
    return label


def counts_text(counts: Counts) -> str:
    """`1 regressed · 1 fixed · 18 unchanged`: regressed and unchanged always, the rest when
    there are any."""
    parts = [f"{counts.regressed} regressed"]
    if counts.fixed:
        parts.append(f"{counts.fixed} fixed")
    if counts.flaky:
        parts.append(f"{counts.flaky} flaky")
    parts.append(f"{counts.unchanged} unchanged")
    if counts.new:
        parts.append(f"{counts.new} new")
    return " · ".join(parts)


def _percent_shift(shift: Shift) -> str:
    return f"{percent(shift.before)} → {percent(shift.now)}"


def _whole(value: float | None) -> int | None:
    return None if value is None else round(value)


def _verdict_text(change: CaseChange) -> str:
    if change.verdict is Verdict.REGRESSED:
        return "passed → failed"
    if change.verdict is Verdict.FIXED:
        return "failed → passed"
    if change.verdict is Verdict.FLAKY:
        runs = f"{change.passed_runs} of {change.runs} passed"
        if change.passed_runs in (0, change.runs):
            runs += ", flaky before"
        text = f"flaky ({runs})"
        if change.passed_runs < change.runs:
            text += ", not counted as a regression"
        return text
    return "passed" if change.verdict is Verdict.PASSED else "failed"


def _worse(change: CaseChange) -> bool:
    return change.verdict is Verdict.REGRESSED or (
        change.score.changed and change.score.direction < 0
    )


def _icon(change: CaseChange) -> str:
    if change.verdict in _ICONS:
        return _ICONS[change.verdict]
    if change.score.changed:
        return "📉" if change.score.direction < 0 else "📈"
    return "🔸"


def _turn_text(role: str, text: str) -> str:
    if not role and not text:
        return "_(the call had already ended)_"
    speaker, said = turn_parts({"role": role, "content": text})
    return f"*{escaped(speaker, 60)}:*  {escape(trim(said, 200))}"


def _diff(found: Divergence) -> list[str]:
    return [
        f">_baseline_   {_turn_text(found.baseline_role, found.baseline)}",
        f">_now_          {_turn_text(found.current_role, found.current)}",
    ]


def change_entry(change: CaseChange, *, turns: bool = True) -> str:
    """One changed case: what changed, and for one that got worse where it diverged (with
    the diverging turns, unless `turns` is False)."""
    parts = [_verdict_text(change)]
    flipped = change.verdict in {Verdict.REGRESSED, Verdict.FIXED}
    if change.score.changed or (
        flipped and change.score.before is not None and change.score.now is not None
    ):
        parts.append(_percent_shift(change.score))
    if change.duration.changed:
        before, now = _whole(change.duration.before), _whole(change.duration.now)
        parts.append(f"duration {duration(before)} → {duration(now)}")
    if change.cost.changed:
        parts.append(f"cost {money(change.cost.before)} → {money(change.cost.now)}")
    show_diff = _worse(change) and change.divergence is not None
    if show_diff:
        assert change.divergence is not None
        parts.append(f"diverged at turn {change.divergence.turn}")
    name = escaped(change.case, NAME_LIMIT)
    lines = [f"{_icon(change)} *{name}*: {' · '.join(parts)}"]
    if show_diff and turns:
        assert change.divergence is not None
        lines.extend(_diff(change.divergence))
    return "\n".join(lines)


def _listed(changes: Sequence[CaseChange]) -> list[CaseChange]:
    shown = [change for change in changes if change.changed]
    return sorted(shown, key=lambda change: _ORDER.get(change.verdict, 3))


def regression_summary(
    baseline_label: str,
    changes: Sequence[CaseChange],
    counts: Counts,
    *,
    baseline_elsewhere: bool = False,
) -> dict[str, Any]:
    """The thread reply after a suite run: the counts against the baseline, then only the
    cases that changed (regressed, fixed, flaky, or a score, duration or cost shift beyond the
    tolerance), worst first, with the diverging turns of those that got worse.

    `baseline_label` is mrkdwn, as `baseline_label()` builds it (it may hold a mention).
    `baseline_elsewhere`: the baseline ran in another channel, whose transcripts are not
    this channel's to read, so no turns are quoted."""
    tally = counts_text(counts)
    where = f" ({baseline_label})" if baseline_label else ""
    blocks: list[dict[str, Any]] = [section(f"*Compared with the baseline*{where}: {tally}")]
    listed = _listed(changes)
    if not listed:
        blocks.append(context("No case changed against the baseline."))
    elif baseline_elsewhere:
        blocks.append(
            context("The baseline ran in another channel, so its turns are not quoted here.")
        )
    room = MAX_BLOCKS - len(blocks) - 1  # keep one for "and N more"
    lines: list[str] = []
    shown = 0
    for change in listed:
        entry = change_entry(change, turns=not baseline_elsewhere)
        if lines and len("\n".join([*lines, entry])) > SECTION_LIMIT:
            blocks.append(section("\n".join(lines)))
            lines = []
            room -= 1
        if room <= 0:
            break
        lines.append(entry)
        shown += 1
    if lines:
        blocks.append(section("\n".join(lines)))
    if shown < len(listed):
        left = len(listed) - shown
        blocks.append(context(f"and {plural(left, 'more changed case')}"))
    fallback = f"Compared with the baseline: {tally}"
    regressed = [escape(trim(c.case, NAME_LIMIT)) for c in listed if c.verdict is Verdict.REGRESSED]
    if regressed:
        fallback += f" · regressed: {', '.join(regressed)}"
    return message(fallback, blocks)
