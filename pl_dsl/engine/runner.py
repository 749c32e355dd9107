"""Computes units into the store: rebuilds each unit's typed parameters, hands its stage a
context that loads its named inputs, and writes the output through the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Unit
from pl_dsl.engine.progress import Progress
from pl_dsl.engine.provenance import device_name, software
from pl_dsl.engine.registry import Output, Registry, Stage
from pl_dsl.engine.store import DIVERGED, NONFINITE, OK, is_stored, load_file, read_record, save_unit, write_json
from pl_dsl.errors import StageFailure
from pl_dsl.science.data import Dataset, make_dataset
from pl_dsl.science.nn import Divergence, TwoLayerNet, build_network
from pl_dsl.spec.config import DataConfig, NetworkConfig, from_json, to_json


def describe_runs(unit: Unit) -> str:
    """The runs that need a unit, for messages (at most five ids)."""
    more = len(unit.runs) - 5
    return ", ".join(unit.runs[:5]) + (f" and {more} more" if more > 0 else "")


def resolve_device(unit: Unit, cuda_index: int | None = None) -> torch.device:
    """`auto` means CUDA when present, else CPU; `cuda` without CUDA is an error.

    cuda_index is the device this job claimed; without one, torch's current device is used.
    """
    if unit.device == "cuda" and not torch.cuda.is_available():
        raise StageFailure(f"run {describe_runs(unit)}: device 'cuda' was requested but PyTorch sees no CUDA "
                           "device; use device: auto or cpu")
    if unit.device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", cuda_index) if cuda_index is not None else torch.device("cuda")


# How long a job waits for an input that another job may be storing before it calls it missing.
INPUT_WAIT_SECONDS = 300.0


class UnitRunner:
    """Computes units into a store, reusing what exists and caching data and files in memory."""

    def __init__(self, layout: Layout, registry: Registry, cuda_index: int | None = None,
                 progress: Progress | None = None) -> None:
        self.layout = layout
        self.registry = registry
        self.cuda_index = cuda_index
        self.progress = progress
        self.diverged: list[tuple[Unit, str]] = []  # units computed here that diverged, with the note
        self._data: dict[str, Dataset] = {}
        self._files: dict[tuple[Path, str], Any] = {}

    def has(self, unit: Unit) -> bool:
        return is_stored(self.layout.unit(unit.stage, unit.key))

    def _diverged_input(self, unit: Unit) -> str | None:
        """The note of the first input unit that diverged (directly or through its own inputs)."""
        stage = self.registry[unit.stage]
        for name, key in unit.inputs.items():
            record = read_record(self.layout.unit(stage.inputs[name], key))
            if record.get("status") == DIVERGED:
                return str(record["note"])
        return None

    def dataset(self, data: DataConfig, seed: int, device: torch.device) -> Dataset:
        cache_key = f"{seed}:{to_json(data)}:{device}"
        if cache_key not in self._data:
            self._data[cache_key] = make_dataset(data, seed).to(device)
        return self._data[cache_key]

    def file(self, stage: str, key: str, name: str) -> Any:
        """A stored unit file, read once per process."""
        folder = self.layout.unit(stage, key)
        if (folder, name) not in self._files:
            self._files[(folder, name)] = load_file(folder, name, verify=True)
        return self._files[(folder, name)]

    def compute(self, unit: Unit) -> bool:
        """Compute and store the unit unless it is already stored; returns True if computed."""
        return bool(self.compute_all([unit]))

    def compute_all(self, units: list[Unit], on_done: Callable[[Unit, bool, float], None] | None = None) -> int:
        """Compute and store, in order, the units that are not stored yet; returns how many were
        computed. Units a stage computes together (see Stage.group_key) are computed by one call
        when the first of them comes. on_done(unit, computed, seconds) follows each unit.

        A failure leaves `failed.json` (the message) in the unit's folder for `pl-dsl status`.
        """
        computed = 0
        handled: set[str] = set()
        for position, unit in enumerate(units):
            if unit.key in handled:
                continue
            start = time.perf_counter()
            stage = self.registry[unit.stage]
            group = [] if self.has(unit) else [unit] if stage.compute_together is None \
                else self._group(unit, units[position:], handled)
            if unit.key not in {member.key for member in group} and not self.has(unit) and self._await_inputs(unit):
                group = self._group(unit, units[position:], handled)  # its inputs arrived meanwhile
            if unit.key not in {member.key for member in group}:
                if not self.has(unit):
                    raise StageFailure(f"{unit.stage} {unit.key} (runs {describe_runs(unit)}): an input it reads is "
                                       "not stored; rerun snakemake")
                # stored already, or just now by another job computing the same unit (experiments sharing it)
                handled.add(unit.key)
                if self.progress is not None:
                    self.progress.end_unit()
                if on_done is not None:
                    on_done(unit, False, 0.0)
                continue
            self._compute(stage, group)
            handled.update(member.key for member in group)
            computed += len(group)
            if on_done is not None:
                for member in group:
                    on_done(member, True, time.perf_counter() - start)
        return computed

    def _await_inputs(self, unit: Unit) -> bool:
        """Wait (at most INPUT_WAIT_SECONDS) until every input of a unit is stored: another job,
        of an experiment sharing the input, may be storing it right now. Whether they all are."""
        stage = self.registry[unit.stage]
        folders = [self.layout.unit(stage.inputs[name], key) for name, key in unit.inputs.items()]
        deadline = time.monotonic() + INPUT_WAIT_SECONDS
        while not all(is_stored(folder) for folder in folders):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def _group(self, first: Unit, candidates: list[Unit], handled: set[str]) -> list[Unit]:
        """The unstored units among candidates that are computed together with `first`: those of
        its group whose inputs are stored already (a stack across inputs may reach units whose
        inputs come later in the list; they form a group of their own then)."""
        stage = self.registry[first.stage]
        inputs_stored: dict[tuple[str, str], bool] = {}  # members of a stack share inputs: read each once

        def stored(name: str, key: str) -> bool:
            if (name, key) not in inputs_stored:
                inputs_stored[name, key] = is_stored(self.layout.unit(stage.inputs[name], key))
            return inputs_stored[name, key]

        members: dict[str, Unit] = {}
        for unit in candidates:
            if unit.group == first.group and unit.key not in handled and unit.key not in members \
                    and not self.has(unit) and all(stored(name, key) for name, key in unit.inputs.items()):
                members[unit.key] = unit
        return list(members.values())

    def _compute(self, stage: Stage[Any], members: list[Unit]) -> None:
        """Compute one unit, or a group of units in one call, storing each as it is finished."""
        first = members[0]
        record = {"stage": first.stage, "code": stage.fingerprint, "device": first.device, "metrics": {}, "status": OK}
        start, started = time.perf_counter(), time.time()
        # Nothing to compute from where an input diverged: such a run's result is its divergence.
        notes = {unit.key: self._diverged_input(unit) for unit in members}
        for unit in members:
            note = notes[unit.key]
            if note is not None:
                self._save(unit, {**record, "seconds": 0.0, "status": DIVERGED, "note": note}, {})
                if self.progress is not None:
                    self.progress.end_unit()
        members = [unit for unit in members if notes[unit.key] is None]  # the caller's list stays whole
        if not members:
            return
        first = members[0]
        stored: set[str] = set()
        if len(members) > 1:
            record["computed_with"] = [unit.key for unit in members]
        if self.progress is not None:
            longest = max(members, key=lambda u: u.cost)
            self.progress.start_unit(longest.key, sorted({run for u in members for run in u.runs}), first.stage)
        try:
            def emit(index: int, result: Output | Exception) -> None:
                unit = members[index]
                seconds = time.perf_counter() - start
                record["provenance"] = {**software(), "device_name": device_name(context.device),
                                        "started": started, "finished": time.time()}
                if isinstance(result, Divergence):
                    # A result, not a failure: stored like any unit, so the run's row says so and
                    # the other runs go on; the same parameters would diverge again.
                    note = result.describe(unit.stage)
                    self._save(unit, {**record, "seconds": seconds, "status": DIVERGED, "note": note}, {})
                    self.diverged.append((unit, note))
                elif isinstance(result, Output):
                    marked = {"status": NONFINITE, "note": result.note} if result.note else {}
                    self._save(unit, {**record, "seconds": seconds, "metrics": result.metrics, **marked}, result.files)
                else:
                    raise result
                stored.add(unit.key)

            context = _Context(self, members, 0, resolve_device(first, self.cuda_index), emit)
            record["device"] = str(context.device)
            if stage.compute_together is not None:
                stage.compute_together(context, [from_json(stage.params, unit.params) for unit in members])
                missing = [unit.key for unit in members if unit.key not in stored]
                if missing:
                    raise RuntimeError(f"stage {stage.name} computed together but did not report {missing}")
            else:
                try:
                    emit(0, stage.compute(context, from_json(stage.params, first.params)))  # type: ignore[misc]
                except Divergence as exc:
                    emit(0, exc)
        except Exception as exc:
            for unit in members:
                if unit.key not in stored:
                    write_json(self.layout.failure(unit.stage, unit.key),
                               {"message": f"{type(exc).__name__}: {exc}", "time": time.time()})
            raise
        finally:
            if self.progress is not None:
                self.progress.end_unit(len(members))

    def _save(self, unit: Unit, record: dict[str, Any], files: dict[str, Any]) -> None:
        """Store one unit (its files and record) and keep its files for the units that read them."""
        folder = self.layout.unit(unit.stage, unit.key)
        save_unit(folder, files, {**record, "key": unit.key, "params": unit.params, "inputs": unit.inputs})
        self.layout.failure(unit.stage, unit.key).unlink(missing_ok=True)
        for name, value in files.items():
            if not callable(value):
                self._files[(folder, name)] = value


class _Context:
    """The engine as one unit's computation sees it (implements registry.UnitContext): member
    `index` of the units computed together."""

    def __init__(self, runner: UnitRunner, members: list[Unit], index: int, device: torch.device,
                 emit: Callable[[int, Output | Exception], None]) -> None:
        self._runner = runner
        self._members = members
        self._unit = members[index]
        self.device = device
        self.emit = emit

    @property
    def trajectory(self) -> str:
        return self._unit.trajectory

    @property
    def force_stack(self) -> bool:
        return self._unit.stack

    def member(self, index: int) -> _Context:
        return _Context(self._runner, self._members, index, self.device, self.emit)

    def dataset(self, data: DataConfig, seed: int) -> Dataset:
        return self._runner.dataset(data, seed, self.device)

    def load(self, input_name: str, file: str) -> Any:
        source = self._runner.registry[self._unit.stage].inputs[input_name]
        return self._runner.file(source, self._unit.inputs[input_name], file)

    def network(self, input_name: str, network: NetworkConfig, dim: int) -> TwoLayerNet:
        model = build_network(network, dim, torch.Generator())
        model.load_state_dict(self.load(input_name, "model.pt")["state"])
        return model.to(self.device)

    def progress(self, step: int, steps: int, loss: float) -> None:
        if self._runner.progress is not None:
            self._runner.progress.step(step, steps, loss)


def run_in_process(runs_units: list[dict[str, Unit]], layout: Layout, registry: Registry) -> int:
    """Compute the units of the given runs one run after another in this process.

    Returns how many units were computed (units already stored are reused).
    """
    workspace = UnitRunner(layout, registry)
    return workspace.compute_all([unit for units in runs_units for unit in units.values()])
