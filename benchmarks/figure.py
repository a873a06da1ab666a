"""One measured figure against its target, and the few pure helpers the figures share."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

COMPARISONS = ("<", "<=", "==", ">=", ">")


@dataclass(frozen=True)
class Figure:
    """`value` compared with `target` by `comparison` ("<", "<=", "==", ">=" or ">")."""

    name: str
    value: float
    unit: str
    target: float
    comparison: str
    detail: str
    passed: bool


def meets(value: float, comparison: str, target: float) -> bool:
    """Whether `value comparison target` holds; a value not measured (NaN) never does."""
    if math.isnan(value):
        return False
    if comparison == "<":
        return value < target
    if comparison == "<=":
        return value <= target
    if comparison == "==":
        return value == target
    if comparison == ">=":
        return value >= target
    if comparison == ">":
        return value > target
    raise ValueError(f"unknown comparison {comparison!r}; one of {', '.join(COMPARISONS)}")


def figure(
    name: str, value: float, unit: str, comparison: str, target: float, detail: str = ""
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


def median(values: Sequence[float]) -> float:
    """The middle value (the mean of the two middle ones for an even count); NaN for none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


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


def line(item: Figure) -> str:
    """`name  value (target …)  detail  PASS/FAIL`, one figure to a line."""
    unit = f" {item.unit}" if item.unit else ""
    target = f"(target {item.comparison} {number(item.target)}{unit})"
    parts = [item.name, f"{number(item.value)}{unit} {target}"]
    if item.detail:
        parts.append(item.detail)
    parts.append("PASS" if item.passed else "FAIL")
    return "  ".join(parts)
