"""Computes units into the store: rebuilds each unit's typed parameters, hands its stage a
context that loads its named inputs, and writes the output through the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Unit
from pl_dsl.engine.progress import Progress
from pl_dsl.engine.registry import Registry
from pl_dsl.engine.store import DIVERGED, OK, is_stored, load_file, read_record, save_unit, write_json
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


class Workspace:
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
        """Compute and store the unit unless it is already stored; returns True if computed.

        A failure leaves `failed.json` (the message) in the unit's folder for `pl-dsl status`.
        """
        if self.has(unit):
            return False
        stage = self.registry[unit.stage]
        folder = self.layout.unit(unit.stage, unit.key)
        failure = self.layout.failure(unit.stage, unit.key)
        record = {"stage": unit.stage, "key": unit.key, "code": stage.fingerprint, "params": unit.params,
                  "inputs": unit.inputs, "device": unit.device, "metrics": {}, "status": OK}
        start = time.perf_counter()
        diverged_input = self._diverged_input(unit)
        if diverged_input is not None:  # nothing to compute from: the run's result is its divergence
            save_unit(folder, {}, {**record, "seconds": 0.0, "status": DIVERGED, "note": diverged_input})
            return True
        try:
            context = _Context(self, unit, resolve_device(unit, self.cuda_index))
            output = stage.compute(context, from_json(stage.params, unit.params))
        except Divergence as exc:
            # A result, not a failure: stored like any unit, so the run's row says so and the
            # other runs go on; the same parameters would diverge again.
            save_unit(folder, {}, {**record, "seconds": time.perf_counter() - start, "status": DIVERGED,
                                   "note": exc.describe(unit.stage)})
            failure.unlink(missing_ok=True)
            self.diverged.append((unit, exc.describe(unit.stage)))
            return True
        except Exception as exc:
            write_json(failure, {"message": f"{type(exc).__name__}: {exc}", "time": time.time()})
            raise
        save_unit(folder, output.files, {**record, "seconds": time.perf_counter() - start,
                                         "device": str(context.device), "metrics": output.metrics})
        failure.unlink(missing_ok=True)
        for name, value in output.files.items():
            if not callable(value):
                self._files[(folder, name)] = value
        return True


class _Context:
    """The engine as one unit's computation sees it (implements registry.UnitContext)."""

    def __init__(self, workspace: Workspace, unit: Unit, device: torch.device) -> None:
        self._workspace = workspace
        self._unit = unit
        self.device = device

    def dataset(self, data: DataConfig, seed: int) -> Dataset:
        return self._workspace.dataset(data, seed, self.device)

    def load(self, input_name: str, file: str) -> Any:
        source = self._workspace.registry[self._unit.stage].inputs[input_name]
        return self._workspace.file(source, self._unit.inputs[input_name], file)

    def network(self, input_name: str, network: NetworkConfig, dim: int) -> TwoLayerNet:
        model = build_network(network, dim, torch.Generator())
        model.load_state_dict(self.load(input_name, "model.pt")["state"])
        return model.to(self.device)

    def progress(self, step: int, steps: int, loss: float) -> None:
        if self._workspace.progress is not None:
            self._workspace.progress.step(step, steps, loss)


def run_in_process(runs_units: list[dict[str, Unit]], layout: Layout, registry: Registry) -> int:
    """Compute the units of the given runs one run after another in this process.

    Returns how many units were computed (units already stored are reused).
    """
    workspace = Workspace(layout, registry)
    return sum(workspace.compute(unit) for units in runs_units for unit in units.values())
