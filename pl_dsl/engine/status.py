"""How far the experiments are: per experiment and stage, units done, running, failed and
pending, runs complete, and the estimated compute left. Reads the store and the progress
files of running jobs and writes nothing, so it works while Snakemake runs, on any machine that
sees the results folder (a cluster's shared file system)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Plan, Unit, estimated_seconds
from pl_dsl.engine.progress import is_stale, read_progress
from pl_dsl.engine.store import OK, damage, is_stored, read_json


@dataclass
class StageStatus:
    """The units of one stage of one experiment, by state."""

    stage: str
    units: int = 0
    done: int = 0
    running: int = 0
    failed: int = 0
    pending: int = 0
    damaged: int = 0  # stored, but a file no longer matches its record (only with verify)
    remaining_seconds: float = 0.0  # estimated, one CPU core, over running, failed and pending units


@dataclass
class ExperimentStatus:
    name: str
    runs: int
    runs_complete: int
    stages: list[StageStatus] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # the messages of failed units
    damage: list[str] = field(default_factory=list)  # what is wrong with damaged units (only with verify)
    # Runs of the last collected results table that are not ok, per status (engine/store.py):
    # diverged, or non-finite as the authors' code computes them.
    not_ok: dict[str, int] = field(default_factory=dict)

    @property
    def remaining_seconds(self) -> float:
        return sum(stage.remaining_seconds for stage in self.stages)


@dataclass
class Status:
    experiments: list[ExperimentStatus]
    jobs: list[dict[str, Any]]  # progress files of running (or stale) jobs, with `stale` set

    def to_json(self) -> dict[str, Any]:
        return {"experiments": [{**asdict(e), "remaining_seconds": e.remaining_seconds} for e in self.experiments],
                "jobs": self.jobs}


def _failure(layout: Layout, unit: Unit) -> str | None:
    try:
        return str(read_json(layout.failure(unit.stage, unit.key))["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _not_ok(layout: Layout, name: str) -> dict[str, int]:
    """How many runs of an experiment's results table are not ok, per status (none without a table)."""
    from pl_dsl.report.results import read_table

    try:
        rows = read_table(layout.table(name))
    except OSError:
        return {}
    counts: dict[str, int] = {}
    for row in rows:
        if row.get("status", OK) != OK:
            counts[row["status"]] = counts.get(row["status"], 0) + 1
    return counts


def collect_status(plan: Plan, layout: Layout, now: float | None = None, verify: bool = False) -> Status:
    """The state of every unit of every planned experiment, and the jobs reporting progress.
    verify: also check every stored file against the sha256 in its record."""
    jobs = read_progress(layout.root / "progress")
    for job in jobs:
        job["stale"] = is_stale(job, now if now is not None else time.time())
    running = {job["unit"] for job in jobs if job.get("unit") and not job["stale"]}
    stored: dict[str, bool] = {}
    folders: dict[str, set[str]] = {}  # per stage, the units with a folder (a record or a failure)
    experiments = []
    for name, experiment in plan.experiments.items():
        result = ExperimentStatus(name, len(experiment.experiment.runs), 0)
        for stage_name, units in experiment.units.items():
            if not units:
                continue
            stage = StageStatus(stage_name)
            if stage_name not in folders:
                folders[stage_name] = layout.unit_folders(stage_name)
            for unit in units:
                stage.units += 1
                has_folder = unit.key in folders[stage_name]
                if unit.key not in stored:
                    stored[unit.key] = has_folder and is_stored(layout.unit(unit.stage, unit.key))
                if stored[unit.key] and verify:
                    problem = damage(layout.unit(unit.stage, unit.key), deep=True)
                    if problem is not None:
                        stored[unit.key] = False
                        stage.damaged += 1
                        stage.remaining_seconds += estimated_seconds(unit.cost)
                        result.damage.append(problem)
                        continue
                if stored[unit.key]:
                    stage.done += 1
                    continue
                stage.remaining_seconds += estimated_seconds(unit.cost)
                message = None if unit.key in running or not has_folder else _failure(layout, unit)
                if unit.key in running:
                    stage.running += 1
                elif message is not None:
                    stage.failed += 1
                    result.failures.append(f"{unit.stage} {unit.key}: {message}")
                else:
                    stage.pending += 1
            result.stages.append(stage)
        result.not_ok = _not_ok(layout, name)
        result.runs_complete = sum(all(stored.get(key, False) for key in keys.values())
                                   for keys in experiment.unit_keys.values())
        experiments.append(result)
    return Status(experiments, jobs)
