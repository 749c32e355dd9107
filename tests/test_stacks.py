"""Nets of one shape trained as one stacked model across seeds, learning rates and inputs (the
path CUDA takes by default; `--config stack=on` forces it here, on the CPU): each net equals the
net trained alone within float tolerance, a diverging net stops alone, and the plan forms the
stacks (one batch each, under the memory bound) for a run on `device: cuda`."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import build_plan, run_units
from pl_dsl.engine.runner import UnitRunner
from pl_dsl.engine.store import load_file, read_record
from pl_dsl.science.nn import Divergence, TwoLayerNet, build_network, train, train_stacked
from pl_dsl.spec.check import check_text
from pl_dsl.spec.config import NetworkConfig, TrainingConfig
from pl_dsl.stages import REGISTRY

NETWORK = NetworkConfig(width=24, leaky_slope=0.1, readout="gaussian", bias=True)


def _problem(seed: int) -> tuple[TwoLayerNet, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(150, 12, generator=generator)
    y = torch.where(x[:, 0] + 0.5 * torch.randn(150, generator=generator) > 0, 1.0, -1.0)
    return build_network(NETWORK, 12, generator), x, y


def test_stacked_nets_with_their_own_data_and_init_equal_nets_trained_alone() -> None:
    base = TrainingConfig(loss="exponential", steps=60, lr=0.2, optimizer="sgd", momentum=0.9, schedule="plateau",
                          precision="fp32")
    # Three seeds (own init, own data), two of them at two learning rates; one lr diverges.
    plan = [(0, replace(base, lr=0.5)), (0, replace(base, lr=0.05, steps=25)), (1, base), (2, replace(base, lr=0.1)),
            (2, replace(base, lr=1e5))]
    problems = [_problem(seed) for seed, _ in plan]
    stacked: dict[int, TwoLayerNet] = {}
    diverged: dict[int, Divergence] = {}
    train_stacked([net for net, _, _ in problems], [x for _, x, _ in problems], [y for _, _, y in problems],
                  [config for _, config in plan], [{config.steps} for _, config in plan],
                  on_snapshot=lambda i, t, net, losses: stacked.__setitem__(i, net),
                  on_diverged=lambda i, error: diverged.__setitem__(i, error))
    alone_diverged = set()
    for index, (seed, config) in enumerate(plan):
        net, x, y = _problem(seed)
        try:
            train(net, x, y, config)
        except Divergence as error:
            alone_diverged.add(index)
            assert diverged[index].step == error.step
            continue
        for name, value in net.state_dict().items():
            assert torch.allclose(stacked[index].state_dict()[name], value, rtol=1e-4, atol=1e-5), (index, name)
    assert alone_diverged == set(diverged) == {4} and set(stacked) == {0, 1, 2, 3}


SWEEP = """
name: stacks
data: {kind: shifted_gauss, dim: 10, n_train: 60, n_test: 40}
network: {width: 16}
training: {loss: exponential, steps: 30, momentum: 0.9, schedule: plateau}
attack: {norm: l2}
device: cpu
seeds: [0, 1]
sweep:
  grid:
    attack.eps: [0.3, 0.6]
    training.lr: [0.5, 0.05, 100000.0]
"""


def _weights(layout: Layout, units: list, stage: str) -> dict[str, torch.Tensor]:
    return {u.key: load_file(layout.unit(stage, u.key), "model.pt")["state"]["weight"]
            for u in units if u.stage == stage and read_record(layout.unit(stage, u.key))["status"] == "ok"}


def test_stack_on_trains_f_across_seeds_and_g_across_attacks_as_alone(tmp_path: Path) -> None:
    experiment, errors = check_text(SWEEP, "stacks.yaml")
    assert not errors and experiment is not None
    results = {}
    order = {name: i for i, name in enumerate(REGISTRY.names)}
    for mode in ("off", "on"):
        units = list({u.key: u for run in experiment.runs for u in run_units(run, REGISTRY, mode).values()}.values())
        units.sort(key=lambda u: order[u.stage])  # stage by stage, as the plan's stage jobs run them
        runner = UnitRunner(Layout(tmp_path / mode), REGISTRY)
        runner.compute_all(units)
        results[mode] = (runner.layout, units)
    layout, units = results["on"]
    f_units = [u for u in units if u.stage == "train_f"]
    g_units = [u for u in units if u.stage == "train_g"]
    assert len(f_units) == 6 and len(g_units) == 12
    # The lr of 1e5 diverges, alone and in the stack, and stops only its own nets (and what reads them).
    records = {u.key: read_record(layout.unit(u.stage, u.key)) for u in f_units + g_units}
    assert {u.params["train"]["lr"] for u in f_units if records[u.key]["status"] == "diverged"} == {100000.0}
    # One stacked training for every f (2 seeds x 3 lrs) and one for every g whose f learned
    # (2 seeds x 2 attacks x 2 lrs): across seeds, attacks and learning rates.
    learned_g = [u for u in g_units if "computed_with" in records[u.key]]
    assert len(learned_g) == 8
    for members in (f_units, learned_g):
        assert all(set(records[u.key]["computed_with"]) == {m.key for m in members} for u in members)
    for stage in ("train_f", "train_g"):
        alone, together = _weights(results["off"][0], units, stage), _weights(layout, units, stage)
        assert alone.keys() == together.keys() and len(alone) == (4 if stage == "train_f" else 8)
        for key, weight in alone.items():
            assert torch.allclose(together[key], weight, rtol=1e-4, atol=1e-5), (stage, key)


def test_a_plan_for_cuda_forms_shape_stacks_under_the_memory_bound() -> None:
    text = SWEEP.replace("device: cpu", "device: cuda")
    experiment, errors = check_text(text, "stacks.yaml")
    assert not errors and experiment is not None
    plan = build_plan([experiment], REGISTRY, min_batches=2)
    f_batches = [b for (rule, _), b in plan.batches.items() if rule == "train_f"]
    g_batches = [b for (rule, _), b in plan.batches.items() if rule == "train_g"]
    assert not [rule for rule, _ in plan.batches if rule == "fused"]  # stacks span components
    assert len(f_batches) == 1 and len(f_batches[0].units) == 6 and len({u.group for u in f_batches[0].units}) == 1
    assert len(g_batches) == 1 and len(g_batches[0].units) == 12 and all(u.stack for u in g_batches[0].units)
    # Under a bound that holds two nets, the stack is cut between trajectories into three
    # stacks (one job may still run them, one after another).
    per_net = max(u.memory for u in f_batches[0].units)
    tight = build_plan([experiment], REGISTRY, min_batches=1, stack_memory_gb=2.5 * per_net / 2**30)
    f_tight = [u for (rule, _), b in tight.batches.items() if rule == "train_f" for u in b.units]
    assert sorted(Counter(u.group for u in f_tight).values()) == [2, 2, 2]
    # The same spec on the CPU keeps its default plan: no stacks.
    cpu = build_plan([check_text(SWEEP, "stacks.yaml")[0]], REGISTRY, min_batches=2)  # type: ignore[list-item]
    assert not any(u.stack for b in cpu.batches.values() for u in b.units)


def test_an_unknown_stack_mode_is_refused(tmp_path: Path) -> None:
    from conftest import snakemake, write_spec

    spec = write_spec(tmp_path, "tiny", (Path(__file__).parent / "specs/valid/tiny.yaml").read_text())
    result = snakemake(tmp_path, "--config", f"experiments={spec}", "stack=sometimes", "-n")
    assert result.returncode == 1 and "stack=sometimes: use one of auto, on, off" in result.stderr


@pytest.mark.cuda
def test_on_cuda_the_default_plan_stacks_and_matches_the_cpu(tmp_path: Path) -> None:
    experiment_cpu, _ = check_text(SWEEP, "stacks.yaml")
    experiment_gpu, _ = check_text(SWEEP.replace("device: cpu", "device: cuda"), "stacks.yaml")
    assert experiment_cpu is not None and experiment_gpu is not None
    weights = {}
    for name, experiment in (("cpu", experiment_cpu), ("cuda", experiment_gpu)):
        units = list({u.key: u for run in experiment.runs for u in run_units(run, REGISTRY).values()}.values())
        runner = UnitRunner(Layout(tmp_path / name), REGISTRY)
        runner.compute_all(units)
        weights[name] = {json.dumps(u.params, sort_keys=True): w for u in units if u.stage == "train_f"
                         for w in [_weights(runner.layout, [u], "train_f").get(u.key)] if w is not None}
    assert weights["cpu"].keys() == weights["cuda"].keys()
    for key, weight in weights["cpu"].items():
        assert torch.allclose(weight, weights["cuda"][key].cpu(), rtol=1e-3, atol=1e-4), key


def test_a_calibration_sets_runtimes_and_estimates_but_not_the_plan(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pl_dsl.engine import calibration
    from pl_dsl.engine import plan as planning

    from conftest import run_cli

    experiment, _ = check_text(SWEEP.replace("device: cpu", "device: cuda").replace("seeds: [0, 1]", "seeds: [0, 1, 2, 3]"),
                               "stacks.yaml")
    assert experiment is not None
    before = build_plan([experiment], REGISTRY)
    # A measured calibration (a tiny shape: this test times nothing) is stored where asked.
    monkeypatch.setenv("PL_DSL_CALIBRATION", str(tmp_path / "calibration.json"))
    stored = calibration.calibrate({"dim": 20, "samples": 50, "width": 8, "steps": 3})
    assert json.loads((tmp_path / "calibration.json").read_text())["cpu"]["multiply_adds_per_second"] > 0
    assert calibration.rate("cpu") == stored["cpu"]["multiply_adds_per_second"]
    # A slow GPU: runtimes follow its (stacked) rate; the plan's batches do not change.
    slow = {"cuda": {"multiply_adds_per_second": 1e4, "stacked_multiply_adds_per_second": 2e4, "measured": "now",
                     "device_name": "a slow GPU"}}
    (tmp_path / "calibration.json").write_text(json.dumps(slow))
    planning._calibration.cache_clear()
    after = build_plan([experiment], REGISTRY)
    assert before.batches.keys() == after.batches.keys()
    stack = next(b for (rule, _), b in after.batches.items() if rule == "train_g")
    minutes = stack.resources()["runtime"]
    expected = planning.RUNTIME_SAFETY * planning.calibrated_seconds(stack.units) / 60  # type: ignore[operator]
    assert minutes == math.ceil(expected) + 1 and minutes > planning.RUNTIME_FLOOR_MINUTES
    planning._calibration.cache_clear()
    spec = tmp_path / "stacks.yaml"
    spec.write_text(SWEEP)
    shown = run_cli("runs", "--summary", "--device", "cuda", str(spec),
                    env={"PL_DSL_CALIBRATION": str(tmp_path / "calibration.json")})
    assert shown.returncode == 0 and "calibrated on a slow GPU" in shown.stdout and "est. GPU-hours" in shown.stdout
