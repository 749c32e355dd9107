"""Step-prefix reuse and stacked nets: a network handed out at step T of a longer training is
the network a training of T steps alone ends with (bit for bit, CPU, causal schedules), and
nets trained stacked (the CUDA path) equal nets trained one by one (fp32 tolerance)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import run_units
from pl_dsl.engine.runner import UnitRunner
from pl_dsl.engine.store import load_file
from pl_dsl.science.nn import Divergence, TwoLayerNet, build_network, stacks, train, train_stacked
from pl_dsl.spec.check import check_text
from pl_dsl.spec.config import NetworkConfig, TrainingConfig
from pl_dsl.stages import REGISTRY

SWEEP = """
name: prefix
data: {data}
network: {{width: 16}}
training: {{loss: logistic, lr: 3.0, momentum: 0.9, schedule: {schedule}, steps: 40}}
attack: {{norm: l2, eps: 0.5, targets: random}}
device: cpu
seeds: [0]
sweep:
  grid:
    train_f.steps: [1, 23, 60]
    train_g.steps: [0, 7, 31]
    training.lr: [3.0, 0.00001]  # the plateau schedule cuts the small rate within these steps
"""
# N > 2d: explicit weights (ByHand); N < 2d: the kernel form (InKernelForm), whose choice must not
# depend on the steps a group trains for.
EXPLICIT = "{kind: shifted_gauss, dim: 10, n_train: 60, n_test: 50}"
KERNEL_FORM = "{kind: gauss, dim: 40, n_train: 30, n_test: 50}"


@pytest.mark.parametrize("data", [EXPLICIT, KERNEL_FORM])
@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_a_snapshot_equals_a_fresh_training_of_that_length(tmp_path: Path, schedule: str, data: str) -> None:
    from pl_dsl.science.nn import in_kernel_form_pays

    assert in_kernel_form_pays(30, 40) and not in_kernel_form_pays(60, 10)
    experiment, errors = check_text(SWEEP.format(schedule=schedule, data=data), "prefix.yaml")
    assert not errors and experiment is not None
    units = [unit for run in experiment.runs for unit in run_units(run, REGISTRY).values()]
    together = UnitRunner(Layout(tmp_path / "together"), REGISTRY)
    assert together.compute_all(units) == len({u.key for u in units})
    alone = UnitRunner(Layout(tmp_path / "alone"), REGISTRY)
    for unit in units:  # each unit on its own: a group of one, trained to its own steps
        alone._compute(REGISTRY[unit.stage], [unit]) if not alone.has(unit) else None
    trained = {u.key: u for u in units if u.stage in ("train_f", "train_g")}
    assert {u.stage for u in trained.values()} == {"train_f", "train_g"}
    for unit in trained.values():
        shared = load_file(together.layout.unit(unit.stage, unit.key), "model.pt")
        single = load_file(alone.layout.unit(unit.stage, unit.key), "model.pt")
        assert shared["state"].keys() == single["state"].keys()
        for name in shared["state"]:
            assert torch.equal(shared["state"][name], single["state"][name]), (unit.stage, unit.params, name)
        assert shared["final_loss"] == single["final_loss"]
    # The snapshots really were taken from one training each: f at 1, 23, 60 steps from one.
    for lr in (3.0, 1e-5):
        f_keys = {u.key for u in trained.values() if u.stage == "train_f" and u.params["train"]["lr"] == lr}
        records = [json.loads((together.layout.unit("train_f", key) / "record.json").read_text()) for key in f_keys]
        assert len(f_keys) == 3 and all(set(record["computed_with"]) == f_keys for record in records)


def test_the_plateau_schedule_acts_in_the_prefix_test() -> None:
    """The plateau case above tests the schedule's state only if a rate is cut within the
    steps swept: with the same data and the small rate, plateau and constant end apart."""
    experiment, errors = check_text(SWEEP.format(schedule="plateau", data=EXPLICIT), "p.yaml")
    assert not errors and experiment is not None
    config = next(r.config for r in experiment.runs if r.config.train_f.lr < 1e-3)
    data = UnitRunner(Layout(Path("unused")), REGISTRY).dataset(config.data, 0, torch.device("cpu"))
    finals = []
    for schedule in ("constant", "plateau"):
        model = build_network(config.network, config.data.dim, torch.Generator().manual_seed(1))
        train(model, data.x, data.y, replace(config.train_f, steps=60, schedule=schedule))
        finals.append(model.weight.detach().clone())
    assert not torch.equal(finals[0], finals[1])


NETWORK = NetworkConfig(width=32, leaky_slope=0.1, readout="gaussian", bias=True)


def _nets(count: int, dim: int) -> list[TwoLayerNet]:
    return [build_network(NETWORK, dim, torch.Generator().manual_seed(7)) for _ in range(count)]


@pytest.mark.parametrize("schedule", ["constant", "plateau"])
def test_stacked_nets_equal_nets_trained_one_by_one(schedule: str) -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 20, generator=generator)
    y = torch.where(torch.randn(200, generator=generator) > 0, 1.0, -1.0)
    base = TrainingConfig(loss="logistic", steps=80, lr=1.0, optimizer="sgd", momentum=0.9, schedule=schedule,
                          precision="fp32")
    configs = [replace(base, lr=4.0, steps=80), replace(base, lr=0.5, steps=35), replace(base, lr=0.05, steps=80)]
    snapshots = [{10, 80}, {35}, {1, 80}]
    stacked: dict[tuple[int, int], tuple[TwoLayerNet, float]] = {}
    train_stacked(_nets(3, 20), [x] * 3, [y] * 3, configs, snapshots,
                  on_snapshot=lambda i, t, net, losses: stacked.__setitem__((i, t), (net, losses[-1])),
                  on_diverged=lambda i, error: pytest.fail(f"net {i} diverged: {error}"))
    assert set(stacked) == {(0, 10), (0, 80), (1, 35), (2, 1), (2, 80)}
    for (index, steps), (net, loss) in stacked.items():
        alone = _nets(1, 20)[0]
        losses = train(alone, x, y, replace(configs[index], steps=steps))
        assert math.isclose(loss, losses[-1], rel_tol=1e-4, abs_tol=1e-6)
        for name, value in alone.state_dict().items():
            assert torch.allclose(net.state_dict()[name], value, rtol=1e-4, atol=1e-5), (index, steps, name)


def test_a_diverging_stacked_net_leaves_the_others_alone() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(100, 20, generator=generator)
    y = torch.where(torch.randn(100, generator=generator) > 0, 1.0, -1.0)
    base = TrainingConfig(loss="exponential", steps=30, lr=1e5, optimizer="sgd", momentum=0.9,
                          schedule="constant", precision="fp32")
    configs = [base, replace(base, lr=0.01)]
    with pytest.raises(Divergence) as alone:
        train(_nets(1, 20)[0], x, y, base)
    diverged: dict[int, Divergence] = {}
    finished: dict[int, TwoLayerNet] = {}
    train_stacked(_nets(2, 20), [x] * 2, [y] * 2, configs, [{30}, {30}],
                  on_snapshot=lambda i, t, net, losses: finished.__setitem__(i, net),
                  on_diverged=lambda i, error: diverged.__setitem__(i, error))
    assert set(diverged) == {0} and diverged[0].step == alone.value.step
    reference = _nets(1, 20)[0]
    train(reference, x, y, configs[1])
    assert set(finished) == {1} and torch.allclose(finished[1].weight, reference.weight, rtol=1e-4, atol=1e-5)


def test_stacking_is_chosen_on_cuda_only() -> None:
    config = TrainingConfig(loss="identity", steps=5, lr=1.0, optimizer="sgd", momentum=0.9, schedule="plateau",
                            precision="fp32")
    two = [config, replace(config, lr=0.1)]
    assert stacks(torch.device("cuda"), two) and not stacks(torch.device("cpu"), two)
    assert not stacks(torch.device("cuda"), two[:1])
    assert not stacks(torch.device("cuda"), [replace(c, precision="bf16") for c in two])


@pytest.mark.cuda
def test_an_lr_grid_on_cuda_trains_stacked_and_matches_the_cpu(tmp_path: Path) -> None:
    weights = {}
    for device in ("cpu", "cuda"):
        text = SWEEP.format(schedule="plateau").replace("device: cpu", f"device: {device}")
        experiment, errors = check_text(text, "grid.yaml")
        assert not errors and experiment is not None
        units = [u for run in experiment.runs for u in run_units(run, REGISTRY).values()]
        workspace = UnitRunner(Layout(tmp_path / device), REGISTRY)
        workspace.compute_all(units)
        weights[device] = {(u.params["train"]["lr"], u.params["train"]["steps"]):
                           load_file(workspace.layout.unit(u.stage, u.key), "model.pt")["state"]["weight"]
                           for u in units if u.stage == "train_f"}
        if device == "cuda":  # both rates and all three lengths of f: one stacked training
            f = next(u for u in units if u.stage == "train_f")
            record = json.loads((workspace.layout.unit("train_f", f.key) / "record.json").read_text())
            assert record["device"].startswith("cuda") and len(record["computed_with"]) == 6
    assert len(weights["cpu"]) == 6
    for key, weight in weights["cpu"].items():
        assert torch.allclose(weight, weights["cuda"][key], rtol=1e-3, atol=1e-4), key
