"""A suite's pass rate and mean score across its runs, as a chart.

`/testcall suite trend NAME [target]` posts the chart of the suite's runs started in the
channel, there; `write_trend` writes the chart of all its runs to a file for `thunderbot suite
trend NAME -o trend.png`.

The series is read from storage (`series`): one point per finished run of the suite (smoke
tests of it included), oldest first, on one target when one is named. Each run is read with
`bot.batch_report.build_report` and its cases judged within that run alone, from the recorded
runs, grades and transcripts: a case *passed* when every run of it met its expectation, is
*flaky* when its runs disagreed, and failed otherwise. The pass rate is passed cases / cases
(a flaky case is not a pass), so it matches the card's "N of M cases passed" for a run without
history. Unlike the regression verdicts (`batch_items.verdict`), this does not depend on the
baseline, so an old run's point never moves when a later run is blessed. The mean score
averages every graded run of the run, repeats included.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from statistics import fmean

from sqlite_utils import Database

from bot.batch_report import build_report
from bot.batches import UnknownSuite
from bot.blocks.common import escape, mention, plural, target_text
from bot.commands import Target, parse_target
from bot.config import Settings
from bot.interactive import tell, upload_file
from bot.launch import UnknownAlias, resolve_target
from bot.services import Services
from bot.verdicts import check
from storage import batches as batch_store
from storage import suites as suite_store
from storage.models import BatchRecord

DEFAULT_THRESHOLD: float = Settings.model_fields["thunderbot_score_threshold"].default


@dataclass(frozen=True)
class TrendPoint:
    """One finished run of a suite. `mean_score` is a fraction (0-1), None when no run of it
    was graded."""

    batch_id: str
    when: datetime
    target_type: str
    target_id: int
    kind: str
    cases: int
    passed: int
    flaky: int
    mean_score: float | None
    blessed: bool

    @property
    def failed(self) -> int:
        return self.cases - self.passed - self.flaky

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases if self.cases else 0.0

    @property
    def target(self) -> str:
        return target_text(self.target_type, self.target_id)


def series(
    db: Database,
    name: str,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    target: tuple[str, int] | None = None,
    channel: str | None = None,
) -> list[TrendPoint]:
    """The trend of suite `name`: a point per finished run, oldest first; only the runs on
    `target` (target_type, target_id) when given, and only those started in `channel` when
    given. A run none of whose calls started has no point."""
    target_type, target_id = target if target is not None else (None, None)
    runs = batch_store.finished_suite_runs(
        db, name.lower(), target_type=target_type, target_id=target_id
    )
    if channel is not None:
        runs = [batch for batch in runs if batch.channel_id == channel]
    points = [_point(db, batch, threshold) for batch in runs]
    return [point for point in points if point is not None]


def _point(db: Database, batch: BatchRecord, threshold: float) -> TrendPoint | None:
    report = build_report(db, batch.id, threshold)
    if report is None:
        return None
    passes: dict[str, list[bool]] = defaultdict(list)
    scores: list[float] = []
    for row in report.rows:
        outcome = row.outcome
        if outcome is None or not outcome.finished:
            continue
        passes[row.case].append(check(row.expected, outcome, threshold).passed)
        if outcome.score is not None:
            scores.append(outcome.score)
    if not passes:
        return None
    return TrendPoint(
        batch_id=batch.id,
        when=datetime.fromisoformat(batch.decided_at or batch.created_at),
        target_type=batch.target_type,
        target_id=batch.target_id,
        kind=batch.kind,
        cases=len(passes),
        passed=sum(all(results) for results in passes.values()),
        flaky=sum(len(set(results)) > 1 for results in passes.values()),
        mean_score=fmean(scores) if scores else None,
        blessed=batch.blessed_by is not None,
    )


def chart(points: list[TrendPoint], *, name: str) -> bytes:
    """The trend chart of suite `name` as PNG bytes."""
    # matplotlib is loaded the first time a chart is drawn: it is half the process's memory.
    from bot.charts import TrendChartPoint, trend_png

    return trend_png(
        [
            TrendChartPoint(
                when=point.when,
                pass_rate=point.pass_rate,
                mean_score=point.mean_score,
                flaky=point.flaky,
                blessed=point.blessed,
                target=point.target,
            )
            for point in points
        ],
        title=f"Suite {name} · {_targets(points)}",
    )


def _targets(points: list[TrendPoint]) -> str:
    targets = list(dict.fromkeys(point.target for point in points))
    return targets[0] if len(targets) == 1 else f"{len(targets)} targets"


def _day(when: datetime) -> str:
    return f"{when:%b} {when.day}"


def _percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _run_line(point: TrendPoint, *, with_target: bool) -> str:
    parts = [
        f"{point.passed} of {plural(point.cases, 'case')} passed ({_percent(point.pass_rate)})"
    ]
    parts.append(
        f"mean score {_percent(point.mean_score)}" if point.mean_score is not None else "no grades"
    )
    if point.flaky:
        parts.append(f"{point.flaky} flaky")
    if point.blessed:
        parts.append("blessed as baseline")
    where = f" on {point.target}" if with_target else ""
    return f"{_day(point.when)} {point.when:%H:%M} UTC{where}: " + " · ".join(parts)


def summary(points: list[TrendPoint], *, name: str, user_id: str) -> str:
    """The comment the chart is posted with: what it covers, and the latest run."""
    first, latest = points[0], points[-1]
    runs = plural(len(points), "run")
    span = (
        _day(first.when)
        if _day(first.when) == _day(latest.when)
        else (f"{_day(first.when)} – {_day(latest.when)}")
    )
    several = len({point.target for point in points}) > 1
    return (
        f"📈 Trend of suite `{escape(name)}` on {_targets(points)} · {runs}, {span} "
        f"(asked by {mention(user_id)})\n"
        f"Latest run, {_run_line(latest, with_target=several)}"
    )


def alt_text(points: list[TrendPoint], *, name: str) -> str:
    latest = points[-1]
    score = f"{_percent(latest.mean_score)}" if latest.mean_score is not None else "none"
    return (
        f"Line chart of suite {name}'s pass rate and mean score over "
        f"{plural(len(points), 'run')} from {_day(points[0].when)} to {_day(latest.when)}, "
        f"with flaky cases as bars below. Latest run: {_percent(latest.pass_rate)} of cases "
        f"passed, mean score {score}, "
        f"{latest.flaky} flaky."
    )


async def post(
    services: Services,
    *,
    team_id: str,
    channel_id: str,
    user_id: str,
    name: str,
    target: Target | None,
    response_url: str | None = None,
) -> None:
    """Post the trend chart of suite `name` in the channel (on `target` only, when given), with
    a comment on the latest run; a note only to `user_id` (through the command's
    `response_url` when given) when there is nothing to draw or the file cannot be shared."""
    db = services.db
    where = ""
    try:
        resolved = resolve_target(services, team_id, target)[:2] if target is not None else None
    except UnknownAlias as error:
        await tell(
            services,
            channel_id,
            user_id,
            f'I don\'t know the alias "{escape(error.name)}". Name the target directly, like '
            f"`/testcall suite trend {escape(name)} agent:12`.",
            response_url=response_url,
        )
        return
    if resolved is not None:
        where = f" on {target_text(*resolved)}"
    record = suite_store.get_suite(db, name)
    if record is None:
        await tell(
            services,
            channel_id,
            user_id,
            f"There is no suite `{escape(name)}` any more.",
            response_url=response_url,
        )
        return
    # The chart is posted for the channel to see: only the runs started in it (those of other
    # channels are their members' to see).
    points = series(
        db, record.name, threshold=services.threshold, target=resolved, channel=channel_id
    )
    if not points:
        await tell(
            services,
            channel_id,
            user_id,
            f"Suite `{escape(record.name)}` has no finished runs{where} yet in this channel, so "
            f"there is no trend to draw. Run it with `/testcall suite run {escape(record.name)}`.",
            response_url=response_url,
        )
        return
    # Drawing takes a moment of CPU: off the event loop, on data already read from storage.
    png = await asyncio.to_thread(chart, points, name=record.name)
    problem = await upload_file(
        services,
        channel_id,
        filename=f"{record.name}-trend.png",
        content=png,
        comment=summary(points, name=record.name, user_id=user_id),
        alt_text=alt_text(points, name=record.name),
    )
    if problem is not None:
        await tell(
            services,
            channel_id,
            user_id,
            f"I couldn't share the chart here ({escape(problem)}). `thunderbot suite trend "
            f"{escape(record.name)} -o trend.png` on the bot's host writes it too.",
            response_url=response_url,
        )


def write_trend(
    db: Database,
    name: str,
    target: Target | str | None,
    path: str | Path,
    *,
    threshold: float = DEFAULT_THRESHOLD,
) -> int:
    """Write the trend chart of suite `name` (on `target`: agent:<id> or number:<id>, not an
    alias) to `path` as PNG; returns the number of runs charted, and writes nothing when
    there are none. Raises UnknownSuite, or `CommandError` for a target it cannot read."""
    record = suite_store.get_suite(db, name)
    if record is None:
        raise UnknownSuite(name)
    if isinstance(target, str):
        target = parse_target(target, allow_alias=False)
    resolved = None
    if target is not None:
        if target.id is None or target.kind == "alias":
            raise ValueError("the command line takes agent:<id> or number:<id>, not an alias")
        resolved = (target.kind, target.id)
    points = series(db, record.name, threshold=threshold, target=resolved)
    if points:
        Path(path).write_bytes(chart(points, name=record.name))
    return len(points)
