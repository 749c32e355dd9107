"""Reducing a results table to curves: per swept axis, an operation (max, min, mean), and at
most one `band` axis (the seeds) whose distribution is kept for the spread.

Two ways to take the best learning rates (`select`):
- per_metric (the authors' notebooks): each metric is maximised on its own, so f's accuracy,
  g's accuracy and the agreement of one point may come from different learning rates;
- a metric name: the one point best for that metric is kept, and every metric is read there,
  so the three curves describe the same networks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import fmean, median
from typing import Any

from pl_dsl.errors import lookup

PER_METRIC = "per_metric"
BAND = "band"
OPERATIONS: dict[str, Callable[[list[float]], float]] = {"max": max, "min": min, "mean": fmean}
STATISTICS: dict[str, Callable[[list[float]], float]] = {"median": median, "mean": fmean, "min": min, "max": max}


@dataclass(frozen=True)
class Point:
    """One x of a curve: the values of the band axis (one per seed; one value without a band)."""

    x: Any
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        return fmean(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)

    def statistic(self, name: str) -> float:
        return lookup(STATISTICS, name, "statistic")(list(self.values))


def parse_cell(text: str) -> Any:
    """A CSV cell back as int, float, bool, None (empty) or string."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def reduction_plan(reduce: str | dict[str, str], axes: Iterable[str], x: str, series: str | None = None) -> dict[str, str]:
    """Axis -> operation for every axis other than x and series (a word applies to all)."""
    others = [a for a in axes if a not in (x, series)]
    if isinstance(reduce, str):
        return {axis: reduce for axis in others}
    return {axis: reduce[axis] for axis in others if axis in reduce}


class Curves(dict[tuple[str, Any], list[Point]]):
    """(metric, series value) -> points sorted by x, and what was done to get them: `reduced`, the
    axes rows were really combined over (with the operation; an axis that never takes two values
    beside one x, as ε zipped with d, is not among them), and `band`, the band axis."""

    def __init__(self, items: dict[tuple[str, Any], list[Point]], reduced: dict[str, str], band: str | None) -> None:
        super().__init__(items)
        self.reduced = reduced
        self.band = band

    @property
    def banded(self) -> bool:
        """Whether some point has several values of the band axis (a spread to draw)."""
        return any(len(point.values) > 1 for points in self.values() for point in points)


def curves(rows: list[dict[str, str]], x: str, metrics: list[str], plan: dict[str, str],
           select: str = PER_METRIC, series: str | None = None) -> Curves:
    """(metric, series value) -> points sorted by x.

    Rows are grouped by x, series and the band axis; within a group the other axes are reduced
    in the plan's order (each over the rows that agree on every axis not yet reduced); the band
    axis then gives each point its values. Rows without a value for a metric are skipped.
    """
    band = next((axis for axis, op in plan.items() if op == BAND), None)
    steps = [(axis, op) for axis, op in plan.items() if op != BAND]
    records = [{k: parse_cell(v) for k, v in row.items()} for row in rows]
    names = sorted({*metrics, *([select] if select != PER_METRIC else [])})
    keys = [axis for axis in ([x, series, band] + [a for a, _ in steps]) if axis]
    reduced: list[dict[str, Any]] = [{**{k: r.get(k) for k in keys}, **{m: r.get(m) for m in names}} for r in records]
    applied: dict[str, str] = {}
    for axis, op in steps:
        operation = lookup(OPERATIONS, op, "reduction")
        keep = [k for k in keys if k != axis]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        for record in reduced:
            groups[tuple(record[k] for k in keep)].append(record)
        if any(len({repr(m[axis]) for m in members}) > 1 for members in groups.values()):
            applied[axis] = op
        reduced = []
        for members in groups.values():
            merged = {k: members[0][k] for k in keep}
            if select != PER_METRIC:  # the single best point for the selection metric
                scored = [m for m in members if m.get(select) is not None]
                chosen = [operation([float(m[select]) for m in scored])] if scored else []
                best = next((m for m in scored if float(m[select]) == chosen[0]), None) if chosen else None
                merged.update({name: best[name] if best else None for name in names})
            else:
                for name in names:
                    values = [float(m[name]) for m in members if m.get(name) is not None]
                    merged[name] = operation(values) if values else None
            reduced.append(merged)
        keys = keep
    result: dict[tuple[str, Any], dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in reduced:
        for metric in metrics:
            if record.get(metric) is not None:
                result[(metric, record.get(series) if series else None)][record[x]].append(float(record[metric]))
    return Curves({key: [Point(value, tuple(points[value])) for value in sorted(points, key=order_key)]
                   for key, points in result.items()}, applied, band)


def order_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, numbers numerically."""
    return (0, value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, str(value))


def sort_values(values: Iterable[Any]) -> list[Any]:
    """Legend and axis values in numeric order (numbers first), text after."""
    return sorted(set(values), key=order_key)
