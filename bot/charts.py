"""Charts as PNG bytes, drawn with matplotlib's Agg renderer.

Only the object API is used (a `Figure` on its own `FigureCanvasAgg`), never `pyplot` or
`rcParams`: nothing is registered globally, no GUI backend is touched, and drawing in a worker
thread leaves every other chart alone. Fonts are matplotlib's bundled DejaVu Sans.

Slack previews an image about 360 px wide, so a chart is drawn at twice that with large type,
its legend above the plot rather than over the data, and a handful of date labels that never
overlap.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.textpath import TextPath
from matplotlib.ticker import FixedLocator, FuncFormatter, MultipleLocator

WIDTH_INCHES, HEIGHT_INCHES, DPI = 7.2, 5.0, 100  # 720 x 500 px, shown at about half that
FONT = "DejaVu Sans"
TITLE_SIZE, LABEL_SIZE, TICK_SIZE = 19, 16, 15
PASS_COLOUR, SCORE_COLOUR, FLAKY_COLOUR, BLESSED_COLOUR = "#1f5fa8", "#e07b00", "#8e6bbf", "#f2c300"
GRID_COLOUR, TEXT_COLOUR = "#d9d9d9", "#222222"
MAX_DATE_LABELS = 4
TARGET_MARKERS = ("o", "^", "D", "v", "P", "X")
LEGEND_COLUMNS = 3


@dataclass(frozen=True)
class TrendChartPoint:
    """One run on the trend chart. Rates are fractions (0-1); None where nothing was graded."""

    when: datetime
    pass_rate: float
    mean_score: float | None
    flaky: int
    blessed: bool
    target: str = ""


def trend_png(points: Sequence[TrendChartPoint], *, title: str) -> bytes:
    """The pass rate and mean score of each run (top) and its flaky cases (bottom), runs in
    order left to right, blessed runs starred. Raises ValueError without points."""
    if not points:
        raise ValueError("a trend chart needs at least one run")
    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    handles = _legend_handles(points)
    legend_rows = -(-len(handles) // LEGEND_COLUMNS)
    top = 0.77 - 0.065 * (legend_rows - 1)
    grid = figure.add_gridspec(
        2, 1, height_ratios=(3.2, 1), hspace=0.14, left=0.13, right=0.95, top=top, bottom=0.12
    )
    rates: Axes = figure.add_subplot(grid[0])
    flaky: Axes = figure.add_subplot(grid[1], sharex=rates)
    xs = list(range(len(points)))

    _draw_rates(rates, xs, points)
    _draw_flaky(flaky, xs, points)
    _date_axis(flaky, xs, [point.when for point in points])
    rates.tick_params(axis="x", labelbottom=False)

    figure.text(
        0.02,
        0.975,
        title,
        ha="left",
        va="top",
        fontsize=TITLE_SIZE,
        fontweight="bold",
        family=FONT,
        color=TEXT_COLOUR,
    )
    figure.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(0.01, 0.9),
        ncol=LEGEND_COLUMNS,
        frameon=False,
        handlelength=1.6,
        columnspacing=1.2,
        handletextpad=0.5,
        prop={"family": FONT, "size": LABEL_SIZE},
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _targets(points: Sequence[TrendChartPoint]) -> list[str]:
    return list(dict.fromkeys(point.target for point in points))


def _marker(points: Sequence[TrendChartPoint], target: str) -> str:
    targets = _targets(points)
    return TARGET_MARKERS[targets.index(target) % len(TARGET_MARKERS)] if len(targets) > 1 else "o"


def _style(axes: Axes) -> None:
    axes.set_facecolor("white")
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color("#888888")
    axes.tick_params(labelsize=TICK_SIZE, colors=TEXT_COLOUR, length=4)
    axes.grid(axis="y", color=GRID_COLOUR, linewidth=1)
    axes.set_axisbelow(True)


def _draw_rates(axes: Axes, xs: list[int], points: Sequence[TrendChartPoint]) -> None:
    """One pass-rate line and one mean-score line per target, each joining only that target's
    runs (told apart by their markers when there are several)."""
    _style(axes)
    passed = [point.pass_rate * 100 for point in points]
    scored: list[float] = []
    for target in _targets(points):
        mine = [x for x, point in zip(xs, points, strict=True) if point.target == target]
        axes.plot(
            mine,
            [passed[x] for x in mine],
            color=PASS_COLOUR,
            linewidth=3,
            marker=_marker(points, target),
            markersize=9,
            zorder=4,
        )
        graded = [(x, points[x].mean_score) for x in mine if points[x].mean_score is not None]
        scored += [score * 100 for _, score in graded if score is not None]
        axes.plot(
            [x for x, _ in graded],
            [score * 100 for _, score in graded if score is not None],
            color=SCORE_COLOUR,
            linewidth=2.5,
            linestyle=(0, (4, 2)),
            marker="s",
            markersize=7,
            zorder=3,
        )
    blessed = [i for i, point in enumerate(points) if point.blessed]
    if blessed:
        axes.plot(
            blessed,
            [passed[i] for i in blessed],
            linestyle="none",
            marker="*",
            markersize=24,
            markerfacecolor=BLESSED_COLOUR,
            markeredgecolor="#7a5c00",
            markeredgewidth=1.2,
            zorder=5,
        )
    # From 50% when every value is well above it, so a run of good results is not squashed
    # against the top; else from 0. Always up to 100%.
    values = passed + scored
    floor = 50 if min(values) >= 60 else 0
    step = 25 if floor else 50
    axes.set_ylim(floor - (100 - floor) * 0.06, 100 + (100 - floor) * 0.09)
    axes.yaxis.set_major_locator(FixedLocator(list(range(floor, 101, step))))
    axes.yaxis.set_minor_locator(FixedLocator(list(range(floor, 101, 25))))
    axes.grid(axis="y", which="minor", color=GRID_COLOUR, linewidth=0.6)
    axes.tick_params(axis="y", which="minor", length=0)
    axes.tick_params(axis="x", length=0)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}%"))
    axes.set_xlim(-0.5 if len(xs) > 1 else -1, xs[-1] + (0.5 if len(xs) > 1 else 1))


def _draw_flaky(axes: Axes, xs: list[int], points: Sequence[TrendChartPoint]) -> None:
    _style(axes)
    counts = [point.flaky for point in points]
    width = 0.6 if len(xs) > 1 else 0.4
    axes.bar(xs, counts, width=width, color=FLAKY_COLOUR, zorder=3)
    top = max(counts)
    axes.set_ylim(0, max(top, 1) * 1.15)
    axes.yaxis.set_major_locator(FixedLocator([0, top] if top else [0]))
    if not top:
        axes.text(
            0.5,
            0.45,
            "no flaky cases",
            transform=axes.transAxes,
            ha="center",
            va="center",
            fontsize=TICK_SIZE,
            family=FONT,
            color="#777777",
        )
    axes.set_ylabel("flaky", fontsize=LABEL_SIZE, family=FONT, color=TEXT_COLOUR)
    axes.yaxis.set_label_coords(-0.1, 0.5)


def _date_axis(axes: Axes, xs: list[int], dates: Sequence[datetime]) -> None:
    """A few runs labelled with their date, evenly spread, first and last included; the time
    too where the days alone would repeat."""
    count = min(len(xs), MAX_DATE_LABELS)
    if count == 1:
        chosen = [0]
    else:
        chosen = sorted({round(i * (len(xs) - 1) / (count - 1)) for i in range(count)})
    days = [_day(dates[i]) for i in chosen]
    one_day = len({d.date() for d in dates}) == 1
    if one_day:
        labels = [dates[i].strftime("%H:%M") for i in chosen]
    elif len(set(days)) < len(days):
        labels = [f"{day}\n{dates[i]:%H:%M}" for day, i in zip(days, chosen, strict=True)]
    else:
        labels = days
    if len(set(labels)) < len(labels):  # several runs within a minute: number them instead
        labels = [f"run {i + 1}" for i in chosen]
    axes.xaxis.set_major_locator(FixedLocator(chosen))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _label(value, chosen, labels)))
    axes.tick_params(axis="x", labelsize=TICK_SIZE)
    if one_day:
        axes.set_xlabel(
            f"{_day(dates[0])} (UTC)", fontsize=TICK_SIZE, family=FONT, color=TEXT_COLOUR
        )


def _day(when: datetime) -> str:
    return f"{when:%b} {when.day}"


def _label(value: float, chosen: list[int], labels: list[str]) -> str:
    position = round(value)
    return labels[chosen.index(position)] if position in chosen else ""


def _legend_handles(points: Sequence[TrendChartPoint]) -> list[Line2D]:
    handles = [
        Line2D([], [], color=PASS_COLOUR, linewidth=3, marker="o", markersize=9, label="pass rate"),
        Line2D(
            [],
            [],
            color=SCORE_COLOUR,
            linewidth=2.5,
            linestyle=(0, (4, 2)),
            marker="s",
            markersize=7,
            label="mean score",
        ),
    ]
    if any(point.blessed for point in points):
        handles.append(
            Line2D(
                [],
                [],
                linestyle="none",
                marker="*",
                markersize=20,
                markerfacecolor=BLESSED_COLOUR,
                markeredgecolor="#7a5c00",
                label="blessed",
            )
        )
    targets = _targets(points)
    if len(targets) > 1:
        handles += [
            Line2D(
                [],
                [],
                linestyle="none",
                marker=_marker(points, target),
                markersize=9,
                color=PASS_COLOUR,
                label=target,
            )
            for target in targets
        ]
    return handles


# Okabe-Ito: told apart with colour blindness too, and each target has its own marker as well.
COMPARE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
COMPARE_LEGEND_COLUMNS = 2
# What fits a legend column and the title, in pixels: longer ones are cut short with "…".
COMPARE_LABEL_PIXELS, TITLE_PIXELS = 270, 690
DURATION_STEPS = (5, 10, 15, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)


@dataclass(frozen=True)
class CompareSeries:
    """One target on the compare chart: each scored run as (duration in seconds, score 0-1)."""

    label: str
    points: tuple[tuple[int, float], ...]


def compare_png(series: Sequence[CompareSeries], *, title: str) -> bytes:
    """Each run's score against its duration, a colour and a marker per target, with each
    target's middle (median duration, mean score) as a large ringed marker. Raises ValueError
    when no run has both."""
    if not any(one.points for one in series):
        raise ValueError("a compare chart needs at least one run with a score and a duration")
    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    label_font = FontProperties(family=FONT, size=LABEL_SIZE)
    title_font = FontProperties(family=FONT, size=TITLE_SIZE, weight="bold")
    handles = [
        Line2D(
            [],
            [],
            linestyle="none",
            marker=TARGET_MARKERS[index % len(TARGET_MARKERS)],
            markersize=11,
            markerfacecolor=COMPARE_COLOURS[index % len(COMPARE_COLOURS)],
            markeredgecolor="white",
            label=_fit(
                one.label + ("" if one.points else " (no scored runs)"),
                label_font,
                COMPARE_LABEL_PIXELS,
            ),
        )
        for index, one in enumerate(series)
    ]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=15,
            markerfacecolor="none",
            markeredgecolor="#666666",
            markeredgewidth=2.5,
            label="median time, mean score",
        )
    )
    legend_rows = -(-len(handles) // COMPARE_LEGEND_COLUMNS)
    top = 0.79 - 0.07 * (legend_rows - 1)
    axes: Axes = figure.add_subplot(
        figure.add_gridspec(1, 1, left=0.14, right=0.96, top=top, bottom=0.15)[0]
    )
    _style(axes)
    axes.grid(axis="x", color=GRID_COLOUR, linewidth=1)
    _draw_runs(axes, series)
    figure.text(
        0.02,
        0.975,
        _fit(title, title_font, TITLE_PIXELS),
        ha="left",
        va="top",
        fontsize=TITLE_SIZE,
        fontweight="bold",
        family=FONT,
        color=TEXT_COLOUR,
    )
    figure.legend(
        handles=_row_major(handles, COMPARE_LEGEND_COLUMNS),
        loc="upper left",
        bbox_to_anchor=(0.01, 0.91),
        ncol=COMPARE_LEGEND_COLUMNS,
        frameon=False,
        handlelength=1.2,
        columnspacing=1.4,
        handletextpad=0.4,
        prop=label_font,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _row_major(handles: list[Line2D], columns: int) -> list[Line2D]:
    """Handles in the order that makes matplotlib (which fills a legend column by column)
    show them row by row, as they are read."""
    rows = -(-len(handles) // columns)
    return [
        handles[row * columns + column]
        for column in range(columns)
        for row in range(rows)
        if row * columns + column < len(handles)
    ]


def _draw_runs(axes: Axes, series: Sequence[CompareSeries]) -> None:
    durations = [d for one in series for d, _ in one.points]
    scores = [s * 100 for one in series for _, s in one.points]
    low, high = min(durations), max(durations)
    pad = max((high - low) * 0.08, 10.0)
    axes.set_xlim(max(0.0, low - pad), high + pad)
    # Targets sharing a (duration, score) would hide each other: each is nudged sideways a
    # little, by its place in the legend, so every colour stays in sight.
    span = high - low + 2 * pad
    nudge = span * 0.022
    drawn = [index for index, one in enumerate(series) if one.points]
    for place, index in enumerate(drawn):
        one = series[index]
        colour = COMPARE_COLOURS[index % len(COMPARE_COLOURS)]
        marker = TARGET_MARKERS[index % len(TARGET_MARKERS)]
        shift = (place - (len(drawn) - 1) / 2) * nudge
        axes.plot(
            [d + shift for d, _ in one.points],
            [s * 100 for _, s in one.points],
            linestyle="none",
            marker=marker,
            markersize=11,
            markerfacecolor=colour,
            markeredgecolor="white",
            markeredgewidth=1.2,
            alpha=0.9,
            zorder=3,
        )
        middle_duration = sorted(d for d, _ in one.points)[(len(one.points) - 1) // 2]
        middle_score = sum(s for _, s in one.points) / len(one.points) * 100
        axes.plot(
            [middle_duration + shift],
            [middle_score],
            linestyle="none",
            marker=marker,
            markersize=20,
            markerfacecolor="none",
            markeredgecolor=colour,
            markeredgewidth=2.5,
            zorder=4,
        )
    # From a round ten a little below the lowest score, so the runs fill the plot; to 100%.
    floor = int(max(0, min(scores) - 5) // 10 * 10)
    step = 10 if 100 - floor <= 50 else 20
    floor = floor // step * step
    axes.set_ylim(floor - (100 - floor) * 0.05, 100 + (100 - floor) * 0.06)
    axes.yaxis.set_major_locator(FixedLocator(list(range(floor, 101, step))))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.0f}%"))
    # Whole, round steps of seconds (never 0:22, 0:25, 0:28), about five of them.
    step = next((s for s in DURATION_STEPS if span / s <= 6), DURATION_STEPS[-1])
    axes.xaxis.set_major_locator(MultipleLocator(step))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _minutes(value)))
    axes.tick_params(axis="x", labelsize=TICK_SIZE)
    axes.set_xlabel("call duration (m:ss)", fontsize=LABEL_SIZE, family=FONT, color=TEXT_COLOUR)
    axes.set_ylabel("score", fontsize=LABEL_SIZE, family=FONT, color=TEXT_COLOUR)


def _fit(text: str, font: FontProperties, pixels: float) -> str:
    """`text` as drawn in `font`, cut short with "…" where it would be wider than `pixels`."""

    def width(candidate: str) -> float:
        # A text path is measured in points; the figure draws DPI pixels to 72 points.
        return float(TextPath((0, 0), candidate, prop=font).get_extents().width) * DPI / 72

    if width(text) <= pixels:
        return text
    while len(text) > 1 and width(text + "…") > pixels:
        text = text[:-1]
    return text.rstrip() + "…"


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(max(round(seconds), 0), 60)
    return f"{minutes}:{rest:02d}"
