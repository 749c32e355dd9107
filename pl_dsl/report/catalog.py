"""What a results root holds: every experiment's folder with its spec, progress and claims
(`pl-dsl list`), and two experiments side by side on the axes they share (`pl-dsl compare`)."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.engine.names import derivation
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
        spec = derivation(folder / "spec.yaml") or ""
        if not spec and layout.source(name).exists():
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


Values = dict[str, float | None]


@dataclass
class Comparison:
    """Two experiments point by point: a point is the values of every field either one varies
    (a field one holds fixed takes its value there), so no run is averaged with another."""

    fields: list[str]  # what identifies a point, in column order
    metrics: list[str]
    matched: list[tuple[tuple[Any, ...], dict[str, tuple[float | None, float | None]]]]
    only_a: list[tuple[tuple[Any, ...], Values]]  # points of A that B has no run at
    only_b: list[tuple[tuple[Any, ...], Values]]
    unknown: list[str]  # fields one side varies whose value the other's runs do not say

    def differs(self, a: float | None, b: float | None) -> bool:
        """Whether a metric differs at a matched point, at the 4 digits the table shows."""
        return (a is None) != (b is None) or (a is not None and b is not None and f"{a:.4g}" != f"{b:.4g}")

    @property
    def differing(self) -> int:
        return sum(any(self.differs(*pair) for pair in values.values()) for _, values in self.matched)


def _axes(rows: list[dict[str, str]], metrics: set[str]) -> list[str]:
    skip = {"run", "device", "panels", *STATUS_COLUMNS}
    return [c for c in rows[0] if c not in skip and c not in metrics and not c.startswith("time_")] if rows else []


def _run_value(run: dict[str, Any], field: str) -> Any:
    """A field's value in one run's metrics.json: swept there, or in its resolved spec (a field of
    the shared `training` section is train_f's and train_g's when they agree)."""
    if field in run.get("varied", {}):
        return run["varied"][field]
    leaves = _leaves(run.get("spec", {}))
    if field in leaves:
        return leaves[field]
    section, _, rest = field.partition(".")
    if section == "training":
        values = {repr(leaves.get(f"{network}.{rest}")) for network in ("train_f", "train_g")}
        if len(values) == 1 and f"train_f.{rest}" in leaves:
            return leaves[f"train_f.{rest}"]
    return _UNKNOWN


_UNKNOWN = object()


def compare(a: Path, b: Path, metrics: list[str], known: set[str]) -> Comparison:
    """A and B (results tables, with their runs/ folders beside them) matched point by point on
    every field either varies; rows with no partner are kept apart, never averaged in."""
    tables = [[row for row in read_table(path) if row.get("status", "ok") == "ok"] for path in (a, b)]
    axes = [_axes(rows, known) for rows in tables]
    fields = list(dict.fromkeys([*axes[0], *axes[1]]))
    unknown: list[str] = []

    def points(rows: list[dict[str, str]], own: list[str], folder: Path) -> dict[tuple[Any, ...], Values]:
        found: dict[tuple[Any, ...], Values] = {}
        for row in rows:
            run: dict[str, Any] = {}
            key = []
            for field in fields:
                if field in own:
                    key.append(parse_cell(row.get(field, "")))
                    continue
                if not run:
                    path = folder / row["run"] / "metrics.json"
                    run = read_json(path) if path.exists() else {"spec": {}}
                value = _run_value(run, field)
                if value is _UNKNOWN:
                    unknown.append(field)
                    value = None
                key.append(value)
            found[tuple(key)] = {m: float(row[m]) if row.get(m) else None for m in metrics}
        return found

    left, right = (points(rows, own, path.parent / "runs") for rows, own, path in zip(tables, axes, (a, b)))
    order = sorted(set(left) | set(right), key=lambda key: [order_key(value) for value in key])
    return Comparison(
        fields, metrics,
        [(key, {m: (left[key][m], right[key][m]) for m in metrics}) for key in order if key in left and key in right],
        [(key, left[key]) for key in order if key not in right], [(key, right[key]) for key in order if key not in left],
        sorted(set(unknown)))


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
    skip = set(axes) | {axis.replace("training.", "train_f.") for axis in axes} \
        | {axis.replace("training.", "train_g.") for axis in axes}
    return [f"{key}: {a.get(key)} vs {b.get(key)}" for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key) and key not in skip]
