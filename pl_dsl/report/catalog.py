"""What a results root holds: every experiment's folder with its spec, progress and claims
(`pl-dsl list`), and two experiments side by side on the axes they share (`pl-dsl compare`)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import read_json
from pl_dsl.report.reduce import order_key, parse_cell
from pl_dsl.report.results import STATUS_COLUMNS, read_table


@dataclass
class Entry:
    """One experiment's results folder."""

    name: str
    spec: str  # the spec file that made it ('' when unknown)
    runs_done: int
    runs: int
    claims_passed: int | None
    claims: int | None
    changed: float  # newest modification time under the folder


def _latest_table_plan(layout: Layout, name: str) -> dict[str, Any] | None:
    """The newest table plan written for an experiment (its runs and their units)."""
    plans = sorted(layout.table_plan("any").parent.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in plans:
        try:
            plan: dict[str, Any] = read_json(path)
        except (OSError, ValueError):
            continue
        if plan.get("experiment") == name:
            return plan
    return None


def experiments(layout: Layout) -> list[Entry]:
    """Every experiment folder under the results root (one with a source.json, a results table
    or a spec.yaml), newest change first."""
    entries = []
    for folder in sorted(p for p in layout.root.iterdir() if p.is_dir()) if layout.root.is_dir() else []:
        name = folder.name
        marks = [layout.source(name), layout.table(name), folder / "spec.yaml"]
        if not any(mark.exists() for mark in marks):
            continue
        spec = ""
        if layout.source(name).exists():
            try:
                spec = str(read_json(layout.source(name)).get("spec", ""))
            except (OSError, ValueError):
                spec = ""
        plan = _latest_table_plan(layout, name)
        runs = plan["runs"] if plan else []
        done = sum(all((layout.unit(stage, key) / "record.json").exists() for stage, key in run["units"].items())
                   for run in runs)
        if not runs and layout.table(name).exists():
            done = len(read_table(layout.table(name)))
        claims_passed = claims = None
        if layout.claims(name).exists():
            with open(layout.claims(name), newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            claims, claims_passed = len(rows), sum(row["passed"] == "true" for row in rows)
        changed = max((p.stat().st_mtime for p in folder.rglob("*") if p.is_file()), default=folder.stat().st_mtime)
        entries.append(Entry(name, spec, done, len(runs) or done, claims_passed, claims, changed))
    return sorted(entries, key=lambda e: -e.changed)


def age(moment: float, now: float | None = None) -> str:
    """How long ago, in words."""
    seconds = (now if now is not None else time.time()) - moment
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


@dataclass
class Comparison:
    """Two experiments on the axes they share: per point, each metric in A and in B."""

    axes: list[str]
    metrics: list[str]
    points: list[tuple[tuple[Any, ...], dict[str, tuple[float | None, float | None]]]]
    only_a: list[str]  # axes only A varies (averaged over at each point)
    only_b: list[str]


def _axes(rows: list[dict[str, str]], metrics: set[str]) -> list[str]:
    skip = {"run", "device", "panels", *STATUS_COLUMNS}
    return [c for c in rows[0] if c not in skip and c not in metrics and not c.startswith("time_")] if rows else []


def compare(a: Path, b: Path, metrics: list[str], known: set[str]) -> Comparison:
    """A and B (results tables) side by side on the axes both have; where one varies an axis the
    other does not, its values at a point are averaged (the comparison says which)."""
    rows_a, rows_b = read_table(a), read_table(b)
    axes_a, axes_b = _axes(rows_a, known), _axes(rows_b, known)
    shared = [axis for axis in axes_a if axis in axes_b]

    def grouped(rows: list[dict[str, str]]) -> dict[tuple[Any, ...], dict[str, float | None]]:
        groups: dict[tuple[Any, ...], list[dict[str, str]]] = {}
        for row in rows:
            if row.get("status", "ok") == "ok":
                groups.setdefault(tuple(parse_cell(row.get(axis, "")) for axis in shared), []).append(row)
        out = {}
        for key, members in groups.items():
            values = {m: [float(r[m]) for r in members if r.get(m)] for m in metrics}
            out[key] = {m: fmean(v) if v else None for m, v in values.items()}
        return out

    left, right = grouped(rows_a), grouped(rows_b)
    keys = sorted(set(left) | set(right), key=lambda key: [order_key(value) for value in key])
    points = [(key, {m: ((left.get(key) or {}).get(m), (right.get(key) or {}).get(m)) for m in metrics}) for key in keys]
    return Comparison(shared, metrics, points, [x for x in axes_a if x not in shared],
                      [x for x in axes_b if x not in shared])


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


def spec_differences(layout: Layout, first: str, second: str, axes: list[str]) -> list[str]:
    """Fields (outside the shared axes) whose resolved values differ between the two experiments'
    runs, as 'field: a vs b' (from one run of each; fields that vary within one are its axes)."""
    def resolved(name: str) -> dict[str, Any]:
        found = next(iter(sorted(layout.runs_dir(name).glob("*/metrics.json"))), None)
        return _leaves(read_json(found)["spec"]) if found else {}

    a, b = resolved(first), resolved(second)
    skip = set(axes) | {"seed"} | {axis.replace("training.", "train_f.") for axis in axes} \
        | {axis.replace("training.", "train_g.") for axis in axes}
    return [f"{key}: {a.get(key)} vs {b.get(key)}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key) and key not in skip]
