"""From runs to stage units and batches: what each stage computes, under which identity.

A unit is one artifact of one stage (a trained f, a set of perturbations, a trained g, a
metrics record). Its key hashes exactly the spec fields the stage depends on plus the keys of
its inputs, so runs that share a trained f share the unit. Units are grouped into batches so
one process (one Snakemake job) amortises Python and torch start-up over several units.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pl_dsl.hashing import stable_hash
from pl_dsl.paths import Layout

if TYPE_CHECKING:  # the batch jobs import this module; keep jsonschema out of their start-up
    from pl_dsl.spec import Experiment, Run

STAGES = ("train_f", "attack", "train_g", "evaluate", "theory", "decision_map")
UPSTREAM = {"train_f": None, "attack": "train_f", "train_g": "attack", "evaluate": "train_g",
            "theory": "train_g", "decision_map": "train_g"}
# Stages a run has only when its spec enables them; the collect step reads these and evaluate.
OPTIONAL_STAGES = ("theory", "decision_map")
FINAL_STAGES = ("evaluate", *OPTIONAL_STAGES)

# Units per batch. Training dominates; attacks and evaluations are cheap next to start-up.
DEFAULT_BATCH_SIZE = {"train_f": 16, "attack": 64, "train_g": 16, "evaluate": 64, "theory": 16,
                      "decision_map": 8}
# At least this many batches per stage (when there are enough units), so jobs run side by side.
DEFAULT_MIN_BATCHES = 2


@dataclass
class Unit:
    """One stage artifact: its identity (`params`, hashed into `key`) and who needs it."""

    stage: str
    key: str
    params: dict[str, Any]
    upstream: str | None
    device: str
    runs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "params": self.params,
                "upstream": self.upstream, "device": self.device, "runs": self.runs}

    @staticmethod
    def from_json(data: dict[str, Any]) -> "Unit":
        return Unit(**data)


def run_units(run: Run) -> dict[str, Unit]:
    """The units of one run, each keyed by its own fields plus its input's key."""
    spec = run.spec
    common = {"data": spec["data"], "seed": spec["seed"], "network": spec["network"]}
    params_by_stage: dict[str, dict[str, Any]] = {
        "train_f": {**common, "train": spec["train_f"]},
        "attack": {**common, "attack": spec["attack"]},
        "train_g": {**common, "train": spec["train_g"], "scenario": spec["scenario"]},
        "evaluate": {**common},
    }
    margins = {k: v for k, v in spec["theory"].items() if k != "enabled"}
    if spec["theory"]["enabled"]:
        params_by_stage["theory"] = {**common, "margins": margins}
    if spec["decision_map"]["enabled"]:
        grid = {k: v for k, v in spec["decision_map"].items() if k != "enabled"}
        params_by_stage["decision_map"] = {**common, "margins": margins, "grid": grid}
    units: dict[str, Unit] = {}
    for stage, params in params_by_stage.items():
        upstream = units[UPSTREAM[stage]].key if UPSTREAM[stage] else None
        if stage in FINAL_STAGES:  # they read f and the attack too
            params = {**params, "attack": units["attack"].key, "f": units["train_f"].key}
        identity = {**params, "data": {k: v for k, v in params["data"].items() if k != "root"}}
        key = stable_hash({"stage": stage, "params": identity, "upstream": upstream}, 16)
        units[stage] = Unit(stage, key, params, upstream, spec["device"], [run.id])
    return units


@dataclass
class Batch:
    """Units of one stage computed by one job, and the upstream batches they read from."""

    stage: str
    id: str
    units: list[Unit]
    needs: list[str]

    def plan(self) -> dict[str, Any]:
        return {"stage": self.stage, "units": [u.to_json() for u in self.units]}


@dataclass
class ExperimentPlan:
    """An experiment's runs, the unit keys of each, and its final-stage batches."""

    experiment: Experiment
    unit_keys: dict[str, dict[str, str]]
    batches: dict[str, list[str]]

    def table_plan(self) -> dict[str, Any]:
        """What the results table needs: each run's id, swept values, spec and metrics key."""
        return {
            "experiment": self.experiment.name,
            "axes": self.experiment.axes,
            "runs": [{"id": run.id, "varied": run.varied, "spec": run.spec,
                      **{stage: self.unit_keys[run.id].get(stage) for stage in FINAL_STAGES}}
                     for run in self.experiment.runs],
        }


@dataclass
class Plan:
    """Every batch of every stage for a set of experiments, addressable by (stage, batch id)."""

    experiments: dict[str, ExperimentPlan]
    batches: dict[tuple[str, str], Batch]


def unit_cost(unit: Unit) -> float:
    """Rough compute cost of a unit (multiply-adds), used only to balance batches."""
    params = unit.params
    data, width = params["data"], params["network"]["width"]
    per_pass = data["dim"] * width
    n_train, n_test = data["n_train"] or 12000, data["n_test"] or 2000  # real data: "all" is ~12k/2k
    if unit.stage in ("train_f", "train_g"):
        return 3.0 * params["train"]["steps"] * n_train * per_pass
    if unit.stage == "attack":
        return 3.0 * params["attack"]["steps"] * n_train * per_pass
    if unit.stage == "theory":
        return 4.0 * (n_train + 2 * n_test) * n_train * data["dim"]
    if unit.stage == "decision_map":
        return 6.0 * params["grid"]["resolution"] ** 2 * (n_train * data["dim"] + per_pass)
    return 4.0 * (n_train + n_test) * per_pass


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
    for unit in sorted(units, key=lambda u: (-unit_cost(u), order[u.key])):
        target = min(range(count), key=lambda i: (len(batches[i]) >= size, load[i], i))
        batches[target].append(unit)
        load[target] += unit_cost(unit) + 1e6  # every unit also costs a little fixed work
    return [sorted(batch, key=lambda u: order[u.key]) for batch in batches]


def build_plan(experiments: list[Experiment], batch_size: dict[str, int] | None = None,
               min_batches: int = DEFAULT_MIN_BATCHES) -> Plan:
    """Group each experiment's units into batches, stage by stage, in run order."""
    sizes = {**DEFAULT_BATCH_SIZE, **(batch_size or {})}
    plans: dict[str, ExperimentPlan] = {}
    batches: dict[tuple[str, str], Batch] = {}
    for experiment in experiments:
        unique: dict[str, dict[str, Unit]] = {stage: {} for stage in STAGES}  # in first-use order
        keys: dict[str, dict[str, str]] = {}
        for run in experiment.runs:
            units = run_units(run)
            keys[run.id] = {stage: unit.key for stage, unit in units.items()}
            for stage, unit in units.items():
                known = unique[stage].setdefault(unit.key, unit)
                if known is not unit:
                    known.runs.append(run.id)
        batch_of: dict[str, str] = {}
        by_stage: dict[str, list[str]] = {}
        for stage in STAGES:
            by_stage[stage] = []
            for members in _split(list(unique[stage].values()), sizes[stage], min_batches):
                batch_id = stable_hash([stage, [u.key for u in members]], 12)
                needs = sorted({batch_of[u.upstream] for u in members if u.upstream})
                batches[(stage, batch_id)] = Batch(stage, batch_id, members, needs)
                by_stage[stage].append(batch_id)
                for unit in members:
                    batch_of[unit.key] = batch_id
        plans[experiment.name] = ExperimentPlan(experiment, keys, by_stage)
    return Plan(plans, batches)


def write_table_plan(layout: Layout, content: dict[str, Any]) -> str:
    """Store a runs table plan under its content hash (once); returns the path."""
    path = layout.table_plan(stable_hash(content, 16))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(content, sort_keys=True, indent=1))
        os.replace(tmp, path)
    return str(path)
