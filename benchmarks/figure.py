"""One measured figure against its target, and the few pure helpers the figures share."""

from __future__ import annotations

import math
from collections.abc import Sequence

from benchmarks.common import Comparison, Figure, median, meets

__all__ = ["Figure", "figure", "median", "meets", "number", "percentile"]


def figure(
    name: str, value: float, unit: str, comparison: Comparison, target: float, detail: str = ""
) -> Figure:
    """A figure judged against its target."""
    return Figure(name, value, unit, target, comparison, detail, meets(value, comparison, target))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100): the smallest value with at least q% of
    the values at or below it. NaN for no values; infinity counts as a value (not reached)."""
    if not 0 < q <= 100:
        raise ValueError("q is a percentage above 0 and at most 100")
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return ordered[max(rank, 1) - 1]


def number(value: float) -> str:
    """A value as printed: at most three significant decimals, "∞" when not reached."""
    if math.isnan(value):
        return "not measured"
    if math.isinf(value):
        return "∞"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"
