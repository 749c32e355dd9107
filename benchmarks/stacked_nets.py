"""Nets per second trained stacked (one model of B nets, science.nn.train_stacked) against one
by one (science.nn.train), side by side in one process, on the CPU and, when present, CUDA.

The nets share data and shape and differ in learning rate, as a learning-rate grid or the
seeds of g for one attack do. Usage: python benchmarks/stacked_nets.py [--device cpu|cuda|all]
[--quick]

With --spec PATH, instead: every unit of that spec computed in this process (as one job would,
on the default device), once with stacking where pl-dsl chooses it and once with every net
trained alone; prints both wall times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from pl_dsl.science.nn import build_network, train, train_stacked
from pl_dsl.spec.config import NetworkConfig, TrainingConfig

# (label, d, N, m, T): the paper's Shifted Gauss and Gauss settings (T shortened for Gauss).
SHAPES = [("Shifted Gauss d=100 N=1000 m=100 T=1000", 100, 1000, 100, 1000),
          ("Gauss d=10000 N=10000 m=100 T=100", 10000, 10000, 100, 100)]
QUICK_SHAPES = [("small d=100 N=1000 m=100 T=100", 100, 1000, 100, 100)]


def nets_per_second(device: torch.device, dim: int, samples: int, width: int, steps: int, count: int,
                    stacked: bool) -> float:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(samples, dim, generator=generator).to(device)
    y = torch.where(torch.randn(samples, generator=generator) > 0, 1.0, -1.0).to(device)
    network = NetworkConfig(width=width, leaky_slope=0.0, readout="gaussian", bias=False)
    base = TrainingConfig(loss="identity", steps=steps, lr=1.0, optimizer="sgd", momentum=0.9,
                          schedule="plateau", precision="fp32")
    configs = [replace(base, lr=10 ** (-3 * i / max(1, count - 1))) for i in range(count)]
    nets = [build_network(network, dim, torch.Generator().manual_seed(1)).to(device) for _ in range(count)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    if stacked:
        train_stacked(nets, [x] * count, [y] * count, configs, [{steps}] * count, on_snapshot=lambda *a: None,
                      on_diverged=lambda *a: None)
    else:
        for net, config in zip(nets, configs):
            train(net, x, y, config)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def whole_spec(spec: Path) -> None:
    """Wall time of every unit of a spec in one process, stacked where chosen vs never stacked."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.plan import run_units
    from pl_dsl.engine.runner import run_in_process
    from pl_dsl.science import nn
    from pl_dsl.spec.check import load_experiment
    from pl_dsl.stages import REGISTRY

    experiment = load_experiment(spec)
    units = [run_units(run, REGISTRY) for run in experiment.runs]
    chooses = nn.stacks
    for label, rule in (("stacked where chosen", chooses), ("every net alone", lambda device, configs, force=False: False)):
        nn.stacks = rule  # type: ignore[assignment]
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            count = run_in_process(units, Layout(Path(tmp)), REGISTRY)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            print(f"{spec.name}: {len(experiment.runs)} runs, {count} units, {label}: "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
    nn.stacks = chooses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="all", choices=["cpu", "cuda", "all"])
    parser.add_argument("--quick", action="store_true", help="one small shape, few nets")
    parser.add_argument("--spec", type=Path, help="time a whole spec instead (see above)")
    args = parser.parse_args()
    if args.spec:
        whole_spec(args.spec)
        return
    devices = [torch.device(d) for d in (["cpu", "cuda"] if args.device == "all" else [args.device])
               if d == "cpu" or torch.cuda.is_available()]
    shapes = QUICK_SHAPES if args.quick else SHAPES
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
          + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no CUDA"))
    for device in devices:
        counts = [1, 4, 16] if args.quick or device.type == "cpu" else [1, 4, 16, 64, 256]
        for label, dim, samples, width, steps in shapes:
            if device.type == "cpu" and dim * samples > 2e7 and not args.quick:
                continue  # minutes per net on a laptop CPU; the GPU row is the point
            nets_per_second(device, dim, samples, width, min(steps, 5), 2, True)  # warm-up
            for count in counts:
                one = nets_per_second(device, dim, samples, width, steps, count, stacked=False)
                many = nets_per_second(device, dim, samples, width, steps, count, stacked=True)
                print(f"{device.type:4} {label:42} B={count:<4} one by one {one:8.2f} nets/s   "
                      f"stacked {many:8.2f} nets/s   stacked / one by one {many / one:6.2f}")


if __name__ == "__main__":
    main()
