"""From runs to stage units and batches: what each stage computes, under which identity.

A unit is one artifact of one stage (a trained f, a set of perturbations, a trained g, a
metrics record). Its key hashes the stage's name, the fingerprint of its code, its typed
parameters (the resolved-run fields it reads) and the keys of its named inputs, so runs that
share a trained f share the unit, and changed code gives new keys from that stage downwards.
Units are grouped into batches so one process (one Snakemake job) amortises Python and torch
start-up over several units. Torch-free: the Snakefile plans at every start.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pl_dsl.engine.registry import Registry
from pl_dsl.hashing import Encoded, dumps, encoded, encoded_dict, stable_hash
from pl_dsl.spec.bulk import collector_paused
from pl_dsl.spec.config import JsonCache

if TYPE_CHECKING:  # the batch jobs import this module; keep jsonschema out of their start-up
    from pl_dsl.spec.expand import Experiment, Run

# At least this many batches per stage (when there are enough units), so jobs run side by side.
DEFAULT_MIN_BATCHES = 2
# A component is fused into one job when separate stage jobs could gain at most this many
# estimated seconds (one core) by running side by side; start-up costs about 2 s per job.
DEFAULT_FUSE_SECONDS = 30.0
# The rule (and manifest folder) of fused batches.
FUSED = "fused"
# For estimates of compute time: multiply-adds one CPU core does per second on these shapes
# (about 95 GFLOP/s measured here, i.e. ~47 G multiply-adds) and the fixed cost of one unit.
CORE_MULTIPLY_ADDS_PER_SECOND = 4.7e10
SECONDS_PER_UNIT = 0.05
# What a cluster job asks for (see `Batch.resources`). Runtime: the estimate on the calibrated
# device (engine.calibration), else on one CPU core (an upper bound for a GPU), times a safety
# factor, plus start-up, never below a floor. Memory:
# the process itself (Python, torch, a CUDA context) plus the largest unit's estimate, doubled
# (a job also caches the data and the input files it read), rounded up to 100 MB.
RUNTIME_SAFETY = 3.0
RUNTIME_FLOOR_MINUTES = 10
PROCESS_MB = 1000
MEMORY_SAFETY = 2.0


def estimated_seconds(cost: float) -> float:
    """Estimated seconds on one CPU core for a unit of the given cost (multiply-adds), at the
    cost model's fixed rate: what planning uses, whatever machine plans."""
    return cost / CORE_MULTIPLY_ADDS_PER_SECOND + SECONDS_PER_UNIT


@lru_cache(maxsize=1)
def _calibration() -> dict[str, Any]:
    from pl_dsl.engine import calibration

    return calibration.load()


def calibrated_seconds(units: list[Unit], device: str | None = None) -> float | None:
    """Estimated seconds of units computed as a job computes them, at the rate calibrated for
    their device (or `device`), stacked groups at the stacked rate (`pl-dsl doctor
    --calibrate`); None when that device kind is not calibrated."""
    from pl_dsl.engine.calibration import rate

    total = 0.0
    for group in _groups(units):
        throughput = rate(device or group[0].device, stacked=group[0].stack, calibration=_calibration())
        if throughput is None:
            return None
        total += group_cost(group) / throughput + SECONDS_PER_UNIT
    return total


@dataclass(slots=True)
class Unit:
    """One stage artifact: its parameters and inputs (hashed into `key`) and which runs need it."""

    stage: str
    key: str
    params: dict[str, Any]
    inputs: dict[str, str]  # input name -> key of the unit it reads
    device: str
    cost: float  # estimated multiply-adds
    memory: float  # estimated bytes held while computing it
    group: str  # units with equal groups are computed by one call (see Stage.group_key)
    trajectory: str  # ... and within it, equal trajectories by one training (step prefixes)
    runs: list[str] = field(default_factory=list)
    stack: bool = False  # its group is nets of one shape, trained as one stacked model

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "params": self.params, "inputs": self.inputs,
                "device": self.device, "cost": self.cost, "memory": self.memory, "runs": self.runs,
                "group": self.group, "trajectory": self.trajectory, "stack": self.stack}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Unit:
        return Unit(**data)


# `--config stack=`: train nets of one shape (across seeds, lrs and inputs) as one stacked
# model where the run's device is cuda (auto, the default), everywhere (on: the CPU too, for
# checking), or never (off: only an lr grid on CUDA, as before).
STACK_MODES = ("auto", "on", "off")
# A stacked group is split so that the estimated memory of its trajectories stays under this
# (`--config stack_memory_gb=`), leaving room on a 16 GB device for the CUDA context and data.
DEFAULT_STACK_MEMORY_GB = 8.0


def stacked(stack: str, device: str) -> bool:
    """Whether a run's training units are grouped by shape under `--config stack=`."""
    return stack == "on" or (stack == "auto" and device == "cuda")


def encoded_strings(parts: dict[str, str]) -> Encoded:
    """A dict of unit keys (hex digits, which JSON writes as they are, quoted), encoded for stable_hash."""
    return encoded_dict({name: Encoded(f'"{key}"') for name, key in parts.items()})


# Stands for the varying value while a HashTemplate encodes the rest (JSON text never holds a bare NUL).
_VARYING = Encoded("\0varying\0")


class HashTemplate:
    """stable_hash of dicts that differ only in the Encoded value of one key (`varying`): the rest
    is encoded once, and each hash places only that value. Equal to stable_hash of the whole dict
    (here, not in pl_dsl.hashing, whose code is part of every stage's fingerprint)."""

    def __init__(self, fixed: dict[str, Encoded], varying: str, length: int) -> None:
        self.prefix, self.suffix = encoded_dict({**fixed, varying: _VARYING}).split(_VARYING)
        self.length = length

    def hash(self, value: Encoded) -> str:
        return hashlib.sha256((self.prefix + value + self.suffix).encode()).hexdigest()[:self.length]


@dataclass
class _StagePoint:
    """What the units of one stage at one parameter point share, whatever their inputs: the
    parameters as JSON, the hashes of their key, trajectory and group but for the inputs' place
    (see HashTemplate), costs."""

    params: dict[str, Any]
    key: HashTemplate
    trajectory: HashTemplate
    group: HashTemplate | str | None  # a hash where it holds no inputs (stacks by shape); None: the trajectory
    by_shape: bool
    cost: float
    memory: float
    sections: tuple[Any, ...]  # the run config sections it was built from, kept alive for their ids


class UnitMemo:
    """What `run_units` builds once and reuses across the runs of a plan: a stage's parameters
    per point (see Stage.point), and each unit per point and inputs."""

    def __init__(self) -> None:
        self.points: dict[Any, _StagePoint] = {}
        self.units: dict[Any, Unit] = {}
        self.json = JsonCache()


def _stage_point(stage: Any, run: Run, stack: str, memo: UnitMemo) -> _StagePoint:
    memo_key = (stage.name, run.config.device, stack, stage.point(run.config))
    point = memo.points.get(memo_key)
    if point is None:
        params = stage.select(run.config)
        by_shape = stage.trains is not None and stacked(stack, run.config.device)
        # nets of one shape stack whatever their seed, lr and inputs; nets that differ in lr train
        # stacked only on CUDA: a CPU-only run keeps them apart
        trajectory_params = stage.group_key(params, keep_lr=True)
        group_params = stage.group_key(params, stack=True) if by_shape else \
            trajectory_params if run.config.device == "cpu" else stage.group_key(params)
        cache = memo.json
        name, on = encoded(stage.name), encoded(run.config.device)
        trajectory = cache.encoded(trajectory_params)
        group = trajectory if group_params is trajectory_params else cache.encoded(group_params)
        group_hash: HashTemplate | str | None = None
        if by_shape:  # nets stacked by shape share a group whatever their inputs: its hash holds none
            group_hash = stable_hash({"stage": name, "device": on, "params": group}, 16)
        elif group != trajectory:
            group_hash = HashTemplate({"stage": name, "device": on, "params": group}, "inputs", 16)
        point = _StagePoint(
            cache.to_json(params),
            HashTemplate({"stage": name, "code": encoded(stage.fingerprint),
                          "params": cache.encoded(params, identity=True)}, "inputs", 16),
            HashTemplate({"stage": name, "device": on, "params": trajectory}, "inputs", 16), group_hash,
            by_shape, float(stage.cost(params)), float(stage.memory(params)),
            tuple(getattr(run.config, section) for section in stage.sections_in_order))
        memo.points[memo_key] = point
    return point


def run_units(run: Run, registry: Registry, stack: str = "auto", memo: UnitMemo | None = None) -> dict[str, Unit]:
    """The units of one run, in stage order, each keyed by its code, parameters and inputs.
    `memo`: what earlier runs of the same plan built (one is made when not given)."""
    memo = memo or UnitMemo()
    units: dict[str, Unit] = {}
    device = run.config.device
    for stage in registry:
        if not stage.enabled(run.config):
            continue
        try:
            keys = tuple([units[source].key for source in stage.inputs.values()])
        except KeyError:
            missing = [source for source in stage.inputs.values() if source not in units]
            raise ValueError(f"stage {stage.name} needs {', '.join(missing)}, which this run does not have") from None
        point = _stage_point(stage, run, stack, memo)
        unit_memo = (id(point), keys)
        unit = memo.units.get(unit_memo)
        if unit is None:
            inputs = dict(zip(stage.inputs, keys))
            read = encoded_strings(inputs)
            trajectory = point.trajectory.hash(read)
            group = trajectory if point.group is None else \
                point.group if isinstance(point.group, str) else point.group.hash(read)
            unit = Unit(stage.name, point.key.hash(read), point.params, inputs, device, point.cost, point.memory,
                        group, trajectory, [run.id], point.by_shape)
            memo.units[unit_memo] = unit
        units[stage.name] = unit
    return units


@dataclass
class Batch:
    """Units computed by one job, and the batches (rule, id) whose units they read. The rule is
    the units' stage, or FUSED for a batch holding whole components (units of several stages)."""

    stage: str
    id: str
    units: list[Unit]
    needs: list[tuple[str, str]]

    def plan(self) -> dict[str, Any]:
        return {"stage": self.stage, "units": [u.to_json() for u in self.units]}

    def resources(self, max_runtime: int | None = None) -> dict[str, int]:
        """What a cluster job computing this batch asks for: `runtime` (minutes, at most
        max_runtime) and `mem_mb`, from the stage's cost and memory estimates of its units (the
        runtime at the calibrated rate of their device where there is one)."""
        calibrated = calibrated_seconds(self.units)
        seconds = batch_seconds(self.units) if calibrated is None else calibrated
        runtime = max(RUNTIME_FLOOR_MINUTES, math.ceil(RUNTIME_SAFETY * seconds / 60) + 1)
        largest = max((unit.memory for unit in self.units), default=0.0)
        mem_mb = 100 * math.ceil((PROCESS_MB + MEMORY_SAFETY * largest / 2**20) / 100)
        return {"runtime": min(runtime, max_runtime) if max_runtime else runtime, "mem_mb": mem_mb}


def table_plan_digest(content: dict[str, Any]) -> str:
    """The name of a table plan (`ExperimentPlan.table_plan`): a hash of all of it, fed piece by
    piece, each section of a run's spec encoded once (the runs of a sweep share their sections)."""
    digest = hashlib.sha256(dumps({key: value for key, value in content.items() if key != "runs"}).encode())
    # (name, id) -> (the section, kept so its id stays its own; the name and it encoded)
    sections: dict[tuple[str, int], tuple[Any, bytes]] = {}
    for run in content["runs"]:
        spec = run["spec"]
        pieces = [dumps({key: value for key, value in run.items() if key != "spec"}).encode()]
        for name in sorted(spec):
            section = spec[name]
            known = sections.get((name, id(section)))
            if known is None:
                known = sections[(name, id(section))] = (section, (dumps(name) + dumps(section)).encode())
            pieces.append(known[1])
        digest.update(b"".join(pieces))  # the same bytes in the same order: the same digest
    return digest.hexdigest()[:16]


@dataclass
class ExperimentPlan:
    """An experiment's runs, the unit keys of each, its batches per rule (stage or FUSED) and its
    units per stage."""

    experiment: Experiment
    unit_keys: dict[str, dict[str, str]]
    batches: dict[str, list[str]]
    registry: Registry
    units: dict[str, list[Unit]]

    def final_batches(self) -> list[tuple[str, str]]:
        """The batches whose finishing means every unit of every run is stored: the fused ones
        and those of the leaf stages."""
        leaves = self.registry.leaves(stage for stage, units in self.units.items() if units)
        return [(rule, batch) for rule in [FUSED, *leaves] for batch in self.batches.get(rule, [])]

    def table_plan(self) -> dict[str, Any]:
        """What the results table needs: runs with swept values, spec and unit keys, the metric
        columns in order, and which unit files each run folder gets."""
        present = [stage for stage in self.registry if self.units.get(stage.name)]
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


def group_cost(units: list[Unit]) -> float:
    """Estimated multiply-adds of units computed together: per trajectory only its longest
    training (the others are its step prefixes)."""
    longest: dict[str, float] = {}
    for unit in units:
        longest[unit.trajectory] = max(longest.get(unit.trajectory, 0.0), unit.cost)
    return sum(longest.values())


def batch_seconds(units: list[Unit]) -> float:
    """Estimated seconds on one CPU core of a batch's units, computed as the workspace does."""
    return sum(estimated_seconds(group_cost(group)) for group in _groups(units))


def _split(items: list[list[Unit]], size: int, min_batches: int) -> list[list[Unit]]:
    """Partition items (units that must share a batch) into batches of at most `size` items (at
    least `min_batches` when possible), balancing estimated time: longest first, each to the
    batch with the least work so far. Units keep their first-use order within a batch."""
    if not items:
        return []
    count = max(math.ceil(len(items) / size), min(min_batches, len(items)))
    # Round the count up to a multiple of min_batches so every round keeps all lanes busy.
    count = min(len(items), math.ceil(count / min_batches) * min_batches)
    order = {unit.key: i for i, unit in enumerate(u for item in items for u in item)}
    costs = [batch_seconds(item) for item in items]
    batches: list[list[Unit]] = [[] for _ in range(count)]
    sizes = [0] * count
    lanes = [(False, 0.0, b) for b in range(count)]  # a heap of (full, load, batch): the least loaded first
    for index in sorted(range(len(items)), key=lambda i: (-costs[i], i)):
        full, load, target = heapq.heappop(lanes)
        batches[target].extend(items[index])
        sizes[target] += 1
        heapq.heappush(lanes, (sizes[target] >= size, load + costs[index], target))
    return [sorted(batch, key=lambda u: order[u.key]) for batch in batches]


def _components(units: list[Unit]) -> list[list[Unit]]:
    """Units linked through their inputs (a trained f and everything computed from it), each
    component in stage order, components in first-use order."""
    parent = {unit.key: unit.key for unit in units}

    def root(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for unit in units:
        for source in unit.inputs.values():
            if source in parent:
                parent[root(unit.key)] = root(source)
    components: dict[str, list[Unit]] = {}
    for unit in units:
        components.setdefault(root(unit.key), []).append(unit)
    return list(components.values())


def _parallel_slack(component: list[Unit]) -> float:
    """Estimated seconds of a component that separate stage jobs could run side by side: its
    total minus, per stage, its longest group (the work on any chain through the stages)."""
    longest: dict[str, float] = {}
    total = 0.0
    for members in _groups(component):
        seconds = estimated_seconds(group_cost(members))
        total += seconds
        longest[members[0].stage] = max(longest.get(members[0].stage, 0.0), seconds)
    return total - sum(longest.values())


def _groups(units: list[Unit]) -> list[list[Unit]]:
    """Units split into the groups computed together (a group never spans stages: its hash
    holds the stage), in first-use order; batches never split a group."""
    groups: dict[str, list[Unit]] = {}
    for unit in units:
        groups.setdefault(unit.group, []).append(unit)
    return list(groups.values())


def _bounded(groups: list[list[Unit]], memory: float) -> list[list[Unit]]:
    """Stacked groups cut, between trajectories, into pieces whose trajectories' estimated
    memory (each stacked net holds its own) stays under `memory` bytes, each piece a group of
    its own (the pieces after the first get new group ids); other groups as they are."""
    pieces: list[list[Unit]] = []
    for group in groups:
        if not group[0].stack:
            pieces.append(group)
            continue
        trajectories: dict[str, list[Unit]] = {}
        for unit in group:
            trajectories.setdefault(unit.trajectory, []).append(unit)
        piece: list[Unit] = []
        held = 0.0
        for members in trajectories.values():
            need = max(unit.memory for unit in members)
            if piece and held + need > memory:
                pieces.append(piece)
                piece, held = [], 0.0
            piece += members
            held += need
        pieces.append(piece)
    for pieces_of_group in _pieces_by_group(pieces):
        for number, piece in enumerate(pieces_of_group[1:], start=1):
            for unit in piece:
                unit.group = stable_hash([unit.group, number], 16)
    return pieces


def _pieces_by_group(pieces: list[list[Unit]]) -> list[list[list[Unit]]]:
    """Pieces of stacked groups, gathered by the group they were cut from."""
    by_group: dict[str, list[list[Unit]]] = {}
    for piece in pieces:
        if piece[0].stack:
            by_group.setdefault(piece[0].group, []).append(piece)
    return list(by_group.values())


def _add_batch(batches: dict[tuple[str, str], Batch], by_rule: dict[str, list[str]],
               batch_of: dict[str, tuple[str, str]], rule: str, members: list[Unit]) -> None:
    """Register a batch of a rule: its id, the batches it reads from, where its units are."""
    batch_id = stable_hash([rule, [u.key for u in members]], 12)
    own = {u.key for u in members}
    needs = sorted({batch_of[key] for u in members for key in u.inputs.values() if key not in own})
    batches[(rule, batch_id)] = Batch(rule, batch_id, members, needs)
    by_rule.setdefault(rule, []).append(batch_id)
    for unit in members:
        batch_of[unit.key] = (rule, batch_id)


@collector_paused()
def build_plan(experiments: list[Experiment], registry: Registry, batch_size: dict[str, int] | None = None,
               min_batches: int = DEFAULT_MIN_BATCHES, fuse_seconds: float = DEFAULT_FUSE_SECONDS,
               stack: str = "auto", stack_memory_gb: float = DEFAULT_STACK_MEMORY_GB) -> Plan:
    """Group each experiment's units into batches. A component (a trained f and everything
    computed from it) whose stages could gain at most `fuse_seconds` from running side by side
    goes whole into a fused batch: one job instead of a chain of stage jobs, each paying
    process start-up; a component with stacked units never does (its stacks span components).
    Other units are batched stage by stage, in run order, each stacked group (nets of one shape,
    see `stacked`) in one batch, cut to `stack_memory_gb`."""
    sizes = {stage.name: stage.batch_size for stage in registry} | (batch_size or {})
    plans: dict[str, ExperimentPlan] = {}
    batches: dict[tuple[str, str], Batch] = {}
    for experiment in experiments:
        unique: dict[str, Unit] = {}  # in first-use order
        keys: dict[str, dict[str, str]] = {}
        memo = UnitMemo()
        for run in experiment.runs:
            units = run_units(run, registry, stack, memo)
            keys[run.id] = {stage: unit.key for stage, unit in units.items()}
            for unit in units.values():
                known = unique.setdefault(unit.key, unit)
                if known.runs[-1] != run.id:
                    known.runs.append(run.id)
        fused: list[list[Unit]] = []
        staged: set[str] = set()
        for component in _components(list(unique.values())):
            if fuse_seconds > 0 and len({u.stage for u in component}) > 1 and not any(u.stack for u in component) \
                    and _parallel_slack(component) <= fuse_seconds:
                fused.append(component)
            else:
                staged.update(u.key for u in component)
        stage_order = {name: i for i, name in enumerate(registry.names)}
        batch_of: dict[str, tuple[str, str]] = {}
        by_rule: dict[str, list[str]] = {}

        root = registry.names[0]
        # A fused job computes its components one after another and, in each, run after run (a
        # unit at the first run that needs it, after its inputs): runs are complete one by one,
        # so an interrupt loses only the run in flight.
        component_of = {unit.key: index for index, component in enumerate(fused) for unit in component}
        run_position = {run.id: index for index, run in enumerate(experiment.runs)}

        for members in _split(fused, sizes[root], min_batches):
            _add_batch(batches, by_rule, batch_of, FUSED, sorted(members, key=lambda u: (
                component_of[u.key], min(run_position[r] for r in u.runs), stage_order[u.stage])))  # noqa: B023
        for stage in registry:
            by_rule.setdefault(stage.name, [])
            mine = [u for u in unique.values() if u.stage == stage.name and u.key in staged]
            for members in _split(_bounded(_groups(mine), stack_memory_gb * 2**30), sizes[stage.name], min_batches):
                _add_batch(batches, by_rule, batch_of, stage.name, members)
        units_of = {stage.name: [u for u in unique.values() if u.stage == stage.name] for stage in registry}
        plans[experiment.name] = ExperimentPlan(experiment, keys, by_rule, registry, units_of)
    return Plan(plans, batches, registry)
