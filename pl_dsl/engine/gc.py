"""Garbage in a results folder: stored units, batch manifests and plan files that no selected
spec references any more (old code versions, edited or deleted specs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Plan, table_plan_digest
from pl_dsl.engine.store import read_json


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def results_units(layout: Layout, only: str = "*", but: str | None = None) -> set[tuple[str, str]]:
    """The units behind every results folder under the results root (or the one named `only`, or
    every one but `but`), whatever spec made it (each run's metrics.json lists its units), so that
    gc never removes what a table was made from."""
    units: set[tuple[str, str]] = set()
    for metrics in layout.root.glob(f"{only}/runs/*/metrics.json"):
        if but is not None and metrics.parent.parent.parent.name == but:
            continue
        try:
            units.update(read_json(metrics).get("units", {}).items())
        except (OSError, ValueError, AttributeError):
            continue
    return units


def garbage(plan: Plan, layout: Layout) -> list[tuple[Path, int]]:
    """Every unit folder, manifest and plan file under the results root that neither the plan
    nor any results folder references, with its size in bytes. A manifest or batch plan stays
    while every unit it lists stays; a table plan while its experiment's results folder exists."""
    units = {(u.stage, u.key) for batch in plan.batches.values() for u in batch.units} | results_units(layout)
    found: list[Path] = []
    store = layout.root / "store"
    for folder in sorted(store.glob("*/*")) if store.exists() else []:
        if folder.is_dir() and (folder.parent.name, folder.name) not in units:
            found.append(folder)
    for kind in ("batches", "plans"):
        for path in sorted((layout.root / kind).glob("*/*.json")) if (layout.root / kind).exists() else []:
            if path.parent.name not in ("tables", "report") and not _lists_only(path, units):
                found.append(path)
    referenced = {layout.table_plan(table_plan_digest(e.table_plan())) for e in plan.experiments.values()}
    for path in sorted(layout.table_plan("any").parent.glob("*.json")):
        if path not in referenced and not _has_results(path, layout):
            found.append(path)
    return [(path, _size(path)) for path in found]


def removal(name: str, layout: Layout) -> list[tuple[Path, int]]:
    """What `pl-dsl rm` removes for one experiment, with sizes: its results folder, its table
    plans, and the stored units its runs used that no other results folder uses."""
    own = results_units(layout, only=name) - results_units(layout, but=name)
    found = [layout.experiment(name), *(folder for stage, key in sorted(own)
                                        if (folder := layout.unit(stage, key)).is_dir())]
    for path in sorted(layout.table_plan("any").parent.glob("*.json")):
        try:
            if read_json(path).get("experiment") == name:
                found.append(path)
        except (OSError, ValueError, AttributeError):
            continue
    return [(path, _size(path)) for path in found if path.exists()]


def _lists_only(path: Path, units: set[tuple[str, str]]) -> bool:
    """Whether a manifest or batch plan lists only units in `units`."""
    try:
        listed = {(unit["stage"], unit["key"]) for unit in read_json(path)["units"]}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return listed <= units


def _has_results(path: Path, layout: Layout) -> bool:
    """Whether a table plan belongs to an experiment whose results folder exists."""
    try:
        return layout.table(str(read_json(path)["experiment"])).exists()
    except (OSError, ValueError, KeyError, TypeError):
        return False


def remove(paths: list[Path]) -> None:
    """Delete what `garbage` or `removal` found."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
