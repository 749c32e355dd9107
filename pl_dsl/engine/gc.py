"""Garbage in a results folder: stored units, batch manifests and plan files that no selected
spec references any more (old code versions, edited or deleted specs)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Plan
from pl_dsl.hashing import stable_hash


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def garbage(plan: Plan, layout: Layout) -> list[tuple[Path, int]]:
    """Every unit folder, manifest and plan file under the results root that the plan does not
    reference, with its size in bytes."""
    units = {(u.stage, u.key) for batch in plan.batches.values() for u in batch.units}
    batches = set(plan.batches)
    found: list[Path] = []
    store = layout.root / "store"
    for folder in sorted(store.glob("*/*")) if store.exists() else []:
        if folder.is_dir() and (folder.parent.name, folder.name) not in units:
            found.append(folder)
    for kind in ("batches", "plans"):
        for path in sorted((layout.root / kind).glob("*/*.json")) if (layout.root / kind).exists() else []:
            stage, name = path.parent.name, path.stem.split("-r")[0]
            if stage != "tables" and (stage, name) not in batches:
                found.append(path)
    referenced = {layout.table_plan(stable_hash(e.table_plan(), 16)) for e in plan.experiments.values()}
    found += sorted(path for path in layout.table_plan("any").parent.glob("*.json") if path not in referenced)
    return [(path, _size(path)) for path in found]


def remove(paths: list[Path]) -> None:
    """Delete what `garbage` found."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
