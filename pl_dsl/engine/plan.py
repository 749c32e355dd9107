"""From runs to stage units and batches: what each stage computes, under which identity.

A unit is one artifact of one stage (a trained f, a set of perturbations, a trained g, a
metrics record). Its key hashes the stage's name, the fingerprint of its code, its typed
parameters (the resolved-run fields it reads) and the keys of its named inputs, so runs that
share a trained f share the unit, and changed code gives new keys from that stage downwards.
Units are grouped into batches so one process (one Snakemake job) amortises Python and torch
start-up over several units. Torch-free: the Snakefile plans at every start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pl_dsl.engine.registry import Registry
from pl_dsl.hashing import stable_hash
from pl_dsl.spec.config import to_json

if TYPE_CHECKING:  # the batch jobs import this module; keep jsonschema out of their start-up
    from pl_dsl.spec.check import Experiment, Run

# At least this many batches per stage (when there are enough units), so jobs run side by side.
DEFAULT_MIN_BATCHES = 2
# For estimates of compute time: multiply-adds one CPU core does per second on these shapes
# (about 95 GFLOP/s measured here, i.e. ~47 G multiply-adds) and the fixed cost of one unit.
CORE_MULTIPLY_ADDS_PER_SECOND = 4.7e10
SECONDS_PER_UNIT = 0.05
# What a cluster job asks for (see `Batch.resources`). Runtime: the estimate on one CPU core
# (an upper bound for a GPU) times a safety factor, plus start-up, never below a floor. Memory:
# the process itself (Python, torch, a CUDA context) plus the largest unit's estimate, doubled
# (a job also caches the data and the input files it read), rounded up to 100 MB.
RUNTIME_SAFETY = 3.0
RUNTIME_FLOOR_MINUTES = 10
PROCESS_MB = 1000
MEMORY_SAFETY = 2.0


def estimated_seconds(cost: float) -> float:
    """Estimated seconds on one CPU core for a unit of the given cost (multiply-adds)."""
    return cost / CORE_MULTIPLY_ADDS_PER_SECOND + SECONDS_PER_UNIT


@dataclass
class Unit:
    """One stage artifact: its parameters and inputs (hashed into `key`) and which runs need it."""

    stage: str
    key: str
    params: dict[str, Any]
    inputs: dict[str, str]  # input name -> key of the unit it reads
    device: str
    cost: float  # estimated multiply-adds
    memory: float  # estimated bytes held while computing it
    runs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "params": self.params, "inputs": self.inputs,
                "device": self.device, "cost": self.cost, "memory": self.memory, "runs": self.runs}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Unit:
        return Unit(**data)


def run_units(run: Run, registry: Registry) -> dict[str, Unit]:
    """The units of one run, in stage order, each keyed by its code, parameters and inputs."""
    units: dict[str, Unit] = {}
    for stage in registry:
        if not stage.enabled(run.config):
            continue
        missing = [source for source in stage.inputs.values() if source not in units]
        if missing:
            raise ValueError(f"stage {stage.name} needs {', '.join(missing)}, which this run does not have")
        params = stage.select(run.config)
        inputs = {name: units[source].key for name, source in stage.inputs.items()}
        key = stable_hash({"stage": stage.name, "code": stage.fingerprint, "inputs": inputs,
                           "params": to_json(params, identity=True)}, 16)
        units[stage.name] = Unit(stage.name, key, to_json(params), inputs, run.config.device,
                                 float(stage.cost(params)), float(stage.memory(params)), [run.id])
    return units


@dataclass
class Batch:
    """Units of one stage computed by one job, and the batches (stage, id) whose units they read."""

    stage: str
    id: str
    units: list[Unit]
    needs: list[tuple[str, str]]

    def plan(self) -> dict[str, Any]:
        return {"stage": self.stage, "units": [u.to_json() for u in self.units]}

    def resources(self, max_runtime: int | None = None) -> dict[str, int]:
        """What a cluster job computing this batch asks for: `runtime` (minutes, at most
        max_runtime) and `mem_mb`, from the stage's cost and memory estimates of its units."""
        seconds = sum(estimated_seconds(unit.cost) for unit in self.units)
        runtime = max(RUNTIME_FLOOR_MINUTES, math.ceil(RUNTIME_SAFETY * seconds / 60) + 1)
        largest = max((unit.memory for unit in self.units), default=0.0)
        mem_mb = 100 * math.ceil((PROCESS_MB + MEMORY_SAFETY * largest / 2**20) / 100)
        return {"runtime": min(runtime, max_runtime) if max_runtime else runtime, "mem_mb": mem_mb}


@dataclass
class ExperimentPlan:
    """An experiment's runs, the unit keys of each, and its batches per stage."""

    experiment: Experiment
    unit_keys: dict[str, dict[str, str]]
    batches: dict[str, list[str]]
    registry: Registry

    def leaf_stages(self) -> list[str]:
        """The stages whose batches finishing means every unit of every run is stored."""
        return self.registry.leaves(stage for stage, ids in self.batches.items() if ids)

    def table_plan(self) -> dict[str, Any]:
        """What the results table needs: runs with swept values, spec and unit keys, the metric
        columns in order, and which unit files each run folder gets."""
        present = [stage for stage in self.registry if self.batches.get(stage.name)]
        return {
            "experiment": self.experiment.name,
            "axes": self.experiment.axes,
            "metrics": [metric for stage in present for metric in stage.metrics]
                       + [f"time_{stage.name}" for stage in present],
            "run_files": {stage.name: list(stage.run_files) for stage in present if stage.run_files},
            "panels": {panel.name: panel.x for panel in self.experiment.panels},
            "runs": [{"id": run.id, "varied": run.varied, "resolved": run.resolved, "panels": run.panels,
                      "spec": run.spec, "units": self.unit_keys[run.id]} for run in self.experiment.runs],
        }


@dataclass
class Plan:
    """Every batch of every stage for a set of experiments, addressable by (stage, batch id)."""

    experiments: dict[str, ExperimentPlan]
    batches: dict[tuple[str, str], Batch]
    registry: Registry


def _split(units: list[Unit], size: int, min_batches: int) -> list[list[Unit]]:
    """Partition units into batches of at most `size` (at least `min_batches` when possible),
    balancing estimated cost: longest first, each to the batch with the least work so far."""
    if not units:
        return []
    count = max(math.ceil(len(units) / size), min(min_batches, len(units)))
    # Round the count up to a multiple of min_batches so every round keeps all lanes busy.
    count = min(len(units), math.ceil(count / min_batches) * min_batches)
    order = {unit.key: i for i, unit in enumerate(units)}
    batches: list[list[Unit]] = [[] for _ in range(count)]
    load = [0.0] * count
    for unit in sorted(units, key=lambda u: (-u.cost, order[u.key])):
        target = min(range(count), key=lambda i: (len(batches[i]) >= size, load[i], i))
        batches[target].append(unit)
        load[target] += unit.cost + 1e6  # every unit also costs a little fixed work
    return [sorted(batch, key=lambda u: order[u.key]) for batch in batches]


def build_plan(experiments: list[Experiment], registry: Registry, batch_size: dict[str, int] | None = None,
               min_batches: int = DEFAULT_MIN_BATCHES) -> Plan:
    """Group each experiment's units into batches, stage by stage, in run order."""
    sizes = {stage.name: stage.batch_size for stage in registry} | (batch_size or {})
    plans: dict[str, ExperimentPlan] = {}
    batches: dict[tuple[str, str], Batch] = {}
    for experiment in experiments:
        unique: dict[str, dict[str, Unit]] = {stage: {} for stage in registry.names}  # in first-use order
        keys: dict[str, dict[str, str]] = {}
        for run in experiment.runs:
            units = run_units(run, registry)
            keys[run.id] = {stage: unit.key for stage, unit in units.items()}
            for stage_name, unit in units.items():
                known = unique[stage_name].setdefault(unit.key, unit)
                if known is not unit:
                    known.runs.append(run.id)
        batch_of: dict[str, tuple[str, str]] = {}
        by_stage: dict[str, list[str]] = {}
        for stage in registry:
            by_stage[stage.name] = []
            for members in _split(list(unique[stage.name].values()), sizes[stage.name], min_batches):
                batch_id = stable_hash([stage.name, [u.key for u in members]], 12)
                needs = sorted({batch_of[key] for u in members for key in u.inputs.values()})
                batches[(stage.name, batch_id)] = Batch(stage.name, batch_id, members, needs)
                by_stage[stage.name].append(batch_id)
                for unit in members:
                    batch_of[unit.key] = (stage.name, batch_id)
        plans[experiment.name] = ExperimentPlan(experiment, keys, by_stage, registry)
    return Plan(plans, batches, registry)
