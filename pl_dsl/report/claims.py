"""Claims: statements of the paper checked on the reduced results.

Each claim kind is one declaration in CLAIM_KINDS: the fields it needs and how it turns the
checked curve (points of x against the value, one value per seed summarised by the claim's
statistic) into (passed, value, threshold, detail). A failed claim is a row of claims.csv,
never an error of the workflow.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.engine.store import atomic_path
from pl_dsl.errors import lookup
from pl_dsl.report.reduce import PER_METRIC, Point, curves, reduction_plan
from pl_dsl.report.results import nonfinite_note, read_table

COLUMNS = ["claim", "passed", "value", "threshold", "detail", "source"]
Curve = list[tuple[Any, float]]  # (x, checked value), sorted by x


@dataclass(frozen=True)
class Verdict:
    passed: bool
    value: float | None
    threshold: float | None
    detail: str


@dataclass(frozen=True)
class ClaimKind:
    """One kind of claim: what it needs besides the metric, and how it is decided."""

    needs: tuple[str, ...]
    decide: Callable[[dict[str, Any], Curve, Curve | None], Verdict]
    uses_other_metric: bool = False


def same_value(a: Any, b: Any) -> bool:
    """Whether two x values are the same point (numbers up to rounding)."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return str(a) == str(b)


def _where(claim: dict[str, Any], curve: Curve) -> Curve:
    """The points the claim speaks of: the one at `at`, or all."""
    return [p for p in curve if same_value(p[0], claim["at"])] if "at" in claim else curve


def _bound(pick: Callable[[list[float]], float], holds: Callable[[float, float], bool], word: str) -> Callable[
        [dict[str, Any], Curve, Curve | None], Verdict]:
    def decide(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
        points = _where(claim, curve)
        if not points:
            return Verdict(False, None, claim["threshold"], _missing(claim, curve))
        value = pick([v for _, v in points])
        worst = next(x for x, v in points if v == value)
        where = f"at x = {worst}" if len(points) > 1 else f"at x = {points[0][0]}"
        return Verdict(holds(value, claim["threshold"]), value, claim["threshold"],
                       f"{claim['metric']} = {value:.4g} {where}; needs {word} {claim['threshold']}")
    return decide


def _near(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
    points = _where(claim, curve)
    if not points:
        return Verdict(False, None, claim["tolerance"], _missing(claim, curve))
    x, value = max(points, key=lambda p: abs(p[1] - claim["target"]))
    distance = abs(value - claim["target"])
    return Verdict(distance <= claim["tolerance"], value, claim["tolerance"],
                   f"{claim['metric']} = {value:.4g} at x = {x}, {distance:.3g} from {claim['target']} "
                   f"(allowed: {claim['tolerance']})")


def spearman(xs: list[float], ys: list[float]) -> float:
    """Spearman's rank correlation (ties get their average rank); nan when either side is constant."""
    def ranks(values: list[float]) -> list[float]:
        order = sorted(range(len(values)), key=lambda i: values[i])
        result = [0.0] * len(values)
        start = 0
        while start < len(order):
            end = start
            while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
                end += 1
            for i in order[start:end + 1]:
                result[i] = (start + end) / 2
            start = end + 1
        return result
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    sy = math.sqrt(sum((b - my) ** 2 for b in ry))
    if sx == 0 or sy == 0:
        return math.nan
    return sum((a - mx) * (b - my) for a, b in zip(rx, ry)) / (sx * sy)


def _trend(sign: int) -> Callable[[dict[str, Any], Curve, Curve | None], Verdict]:
    def decide(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
        numeric = [(float(x), v) for x, v in curve if isinstance(x, (int, float))]
        if len(numeric) < 3:
            return Verdict(False, None, claim["threshold"], f"needs at least 3 numeric points, has {len(numeric)}")
        rho = spearman([x for x, _ in numeric], [v for _, v in numeric])
        passed = not math.isnan(rho) and sign * rho >= claim["threshold"]
        word = "increasing" if sign > 0 else "decreasing"
        return Verdict(passed, rho, claim["threshold"], f"Spearman rho of {claim['metric']} against x = {rho:.3f} over "
                       f"{len(numeric)} points; {word} needs rho {'>=' if sign > 0 else '<='} {sign * claim['threshold']}")
    return decide


def _ratio(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
    below = dict(other or [])
    ratios = [(x, v / below[x]) for x, v in _where(claim, curve) if below.get(x)]
    if not ratios:
        return Verdict(False, None, claim["threshold"], _missing(claim, curve))
    x, value = min(ratios, key=lambda p: p[1])
    return Verdict(value >= claim["threshold"], value, claim["threshold"],
                   f"{claim['metric']} / {claim['over']} = {value:.3g} at x = {x} (the smallest over "
                   f"{len(ratios)} points); needs >= {claim['threshold']}")


def _value_at(curve: Curve, x: Any, default: int) -> tuple[Any, float] | None:
    """The point of a curve at x, or its first (default 0) / last (-1) point when x is None."""
    if x is None:
        return curve[default] if curve else None
    return next((p for p in curve if same_value(p[0], x)), None)


def _rise(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
    start, end = _value_at(curve, claim.get("from"), 0), _value_at(curve, claim.get("to"), -1)
    if start is None or end is None:
        where = claim.get("from") if start is None else claim.get("to")
        return Verdict(False, None, claim["threshold"], _missing({**claim, "at": where}, curve))
    rise = end[1] - start[1]
    return Verdict(rise >= claim["threshold"], rise, claim["threshold"],
                   f"{claim['metric']} goes from {start[1]:.4g} at x = {start[0]} to {end[1]:.4g} at x = {end[0]}: "
                   f"a rise of {rise:.4g}; needs >= {claim['threshold']}")


def _flat(claim: dict[str, Any], curve: Curve, other: Curve | None) -> Verdict:
    if not curve:
        return Verdict(False, None, claim["threshold"], _missing(claim, curve))
    low, high = min(curve, key=lambda p: p[1]), max(curve, key=lambda p: p[1])
    spread = high[1] - low[1]
    return Verdict(spread <= claim["threshold"], spread, claim["threshold"],
                   f"{claim['metric']} spans {low[1]:.4g} (x = {low[0]}) to {high[1]:.4g} (x = {high[0]}) over "
                   f"{len(curve)} points: a spread of {spread:.4g}; needs <= {claim['threshold']}")


def _missing(claim: dict[str, Any], curve: Curve) -> str:
    have = ", ".join(str(x) for x, _ in curve) or "none"
    return f"no value of {claim['metric']} at x = {claim.get('at')} (points: {have})"


CLAIM_KINDS: dict[str, ClaimKind] = {
    "at_least": ClaimKind(("threshold",), _bound(min, lambda v, t: v >= t, ">=")),
    "at_most": ClaimKind(("threshold",), _bound(max, lambda v, t: v <= t, "<=")),
    "near": ClaimKind(("target", "tolerance"), _near),
    "increasing": ClaimKind(("threshold", "panel"), _trend(+1)),
    "decreasing": ClaimKind(("threshold", "panel"), _trend(-1)),
    "ratio_at_least": ClaimKind(("threshold", "over"), _ratio, uses_other_metric=True),
    "rises_by": ClaimKind(("threshold", "panel"), _rise),
    "flat": ClaimKind(("threshold", "panel"), _flat),
}


def _curve(rows: list[dict[str, str]], claim: dict[str, Any], metric: str, x: str | None,
           axes: list[str]) -> Curve:
    """The claim's curve of one metric: reduced as the claim says, seeds summarised by its statistic."""
    x_axis = x or "__all__"
    rows = [{**row, "__all__": "all"} for row in rows] if x is None else rows
    plan = reduction_plan(claim.get("reduce", "max"), axes, x_axis)
    found = curves(rows, x_axis, [metric], plan, claim.get("select", PER_METRIC))
    points: list[Point] = found.get((metric, None), [])
    return [(p.x, p.statistic(claim.get("statistic", "median"))) for p in points]


def _band_axis(claim: dict[str, Any]) -> str | None:
    """The claim's band axis (the seeds, summarised by its statistic), if it has one."""
    reduce = claim.get("reduce", "max")
    return next((axis for axis, op in reduce.items() if op == "band"), None) if isinstance(reduce, dict) else None


def claim_panels(claim: dict[str, Any]) -> list[str]:
    """The panels a claim is checked on: none (every run as one point), one, or each of a list."""
    named = claim.get("panel")
    return [] if named is None else [named] if isinstance(named, str) else list(named)


def _decide(claim: dict[str, Any], kind: ClaimKind, rows: list[dict[str, str]], x: str | None,
            axes: list[str]) -> Verdict:
    curve = _curve(rows, claim, claim["metric"], x, axes)
    other = _curve(rows, claim, claim["over"], x, axes) if kind.uses_other_metric else None
    return kind.decide(claim, curve, other)


def evaluate(claim: dict[str, Any], rows: list[dict[str, str]], panels: dict[str, str], axes: list[str]) -> Verdict:
    """Decide one claim on the rows of the results table (panels: panel name -> its x field).

    A claim on a list of panels holds when it holds on each; its value is that of the first
    panel where it fails, else of the panel closest to its threshold."""
    kind = lookup(CLAIM_KINDS, claim["kind"], "claim kind")
    names = claim_panels(claim)
    verdict = _verdict(claim, kind, rows, panels, axes, names)
    counted = [row for row in rows if not names or set(names) & set(row.get("panels", "").split(";"))]
    note = nonfinite_note(counted)
    if note:
        verdict = Verdict(verdict.passed, verdict.value, verdict.threshold, f"{verdict.detail}; {note}")
    return verdict


def _verdict(claim: dict[str, Any], kind: ClaimKind, rows: list[dict[str, str]], panels: dict[str, str],
             axes: list[str], names: list[str]) -> Verdict:
    if not names:
        verdict = _decide(claim, kind, rows, None, axes)
    else:
        verdicts = [(name, _decide(claim, kind, [row for row in rows if name in row.get("panels", "").split(";")],
                                   panels[name], axes)) for name in names]
        if len(verdicts) == 1:
            verdict = verdicts[0][1]
        else:
            failed = [v for _, v in verdicts if not v.passed]
            known = [v for _, v in verdicts if v.value is not None and v.threshold is not None]
            worst = failed[0] if failed else min(known, key=lambda v: abs(v.value - v.threshold),  # type: ignore[operator]
                                                 default=verdicts[0][1])
            detail = "; ".join(f"{name}: {v.detail}" for name, v in verdicts)
            verdict = Verdict(not failed, worst.value, worst.threshold,
                              f"{len(verdicts) - len(failed)} of {len(verdicts)} panels hold. {detail}")
    band = _band_axis(claim)
    if band is not None:  # say which statistic of the band's values was checked
        verdict = Verdict(verdict.passed, verdict.value, verdict.threshold,
                          f"{verdict.detail} ({claim.get('statistic', 'median')} over {band} at each point)")
    if claim.get("expected_failure"):
        note = f"; expected to fail at this scale: {claim['expected_failure']}"
        verdict = Verdict(verdict.passed, verdict.value, verdict.threshold, verdict.detail + note)
    return verdict


def check_claims(claims: list[dict[str, Any]], table: Path, panels: dict[str, str], axes: list[str],
                 out: Path) -> list[Verdict]:
    """Decide every claim and write claims.csv atomically."""
    rows = read_table(table)
    verdicts = [evaluate(claim, rows, panels, axes) for claim in claims]
    with atomic_path(out) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for claim, verdict in zip(claims, verdicts):
                writer.writerow([claim["claim"], str(verdict.passed).lower(),
                                 "" if verdict.value is None else f"{verdict.value:.6g}",
                                 "" if verdict.threshold is None else verdict.threshold, verdict.detail,
                                 claim.get("source", "")])
    return verdicts
