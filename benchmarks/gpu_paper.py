"""The paper on one GPU: per-shape training rates, the wall time and GPU utilisation of whole
specs run through the workflow with nets stacked by shape, and the projection to the full paper.

Usage, on a machine with CUDA (prints figures; nothing is a pass or a fail):

    python benchmarks/gpu_paper.py                      # rates, the CPU tier, the projection
    python benchmarks/gpu_paper.py --run experiments/paper/shifted_gauss_a.yaml   # also a full spec
    python benchmarks/gpu_paper.py --reference          # also their draws in fp16, against their figure

1. Per-shape rates: for every training shape (d, N, m) of the specs' stacked groups (as the plan
   forms them with `--config stack=on`), multiply-adds per second of one net alone and of a stack
   of min(group size, 64) nets, over a few steps.
2. Whole specs: `pl-dsl run` with `--config stack=on` on the GPU, wall time, trained nets per
   second and GPU utilisation (nvidia-smi, sampled twice a second): the CPU tier
   (experiments/paper-small) and each spec given with --run.
3. Projection: every spec of experiments/paper, each stacked group's cost over the stacked rate
   of its shape, plus the other units at the one-net rate: GPU-hours per spec and in all.

4. With --reference: experiments/reference/shifted_gauss_a_cuda.yaml (the authors' Shifted Gauss (a)
   runs with their random streams, fp16 on CUDA, as their LightningLite(precision=16)) through
   `pl-dsl run` into results/ of the checkout, then its results and claims: each claim's value
   beside the point read off the authors' figure that its threshold comes from (its source).

`--device cpu` runs steps 1 and 3 on the CPU (a check of the script, not a figure to publish).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

from pl_dsl.engine.calibration import training_seconds
from pl_dsl.engine.plan import build_plan, group_cost
from pl_dsl.spec.check import check_file
from pl_dsl.stages import REGISTRY

REPO = Path(__file__).resolve().parent.parent
RATE_STEPS = 5


def shape_of(params: dict) -> tuple[int, int, int]:
    """(d, N, m) of a training unit's parameters (N of real data: the stages' typical size)."""
    from pl_dsl.stages.common import TYPICAL_REAL_SIZES

    data = params["data"]
    return data["dim"], data["n_train"] or TYPICAL_REAL_SIZES[0], params["network"]["width"]


def stacked_groups(specs: list[Path]) -> dict[Path, list[list]]:
    """Per spec, the groups of units its plan computes together with `--config stack=on`."""
    groups: dict[Path, list[list]] = {}
    for spec in specs:
        experiment, errors = check_file(spec, REGISTRY)
        if experiment is None:
            sys.exit(f"{spec}: {errors[0]}")
        units = [u for b in build_plan([experiment], REGISTRY, stack="on").batches.values() for u in b.units]
        by_group: dict[str, list] = {}
        for unit in units:
            by_group.setdefault(unit.group, []).append(unit)
        groups[spec] = list(by_group.values())
    return groups


def rates(device: torch.device, shapes: dict[tuple[int, int, int], int]) -> dict[tuple[int, int, int], tuple[float, float]]:
    """Per shape: multiply-adds per second of one net alone and of `count` nets stacked."""
    measured = {}
    for (dim, samples, width), count in sorted(shapes.items()):
        shape = {"dim": dim, "samples": samples, "width": width, "steps": RATE_STEPS}
        work = 3.0 * RATE_STEPS * samples * dim * width
        training_seconds(device, 1, False, {**shape, "steps": 1})  # warm-up
        alone = work / training_seconds(device, 1, False, shape)
        stack = min(count, 64)
        together = stack * work / training_seconds(device, stack, True, shape) if stack > 1 else alone
        measured[(dim, samples, width)] = (alone, together)
        print(f"shape d={dim:<6} N={samples:<6} m={width:<5} alone {alone / 1e9:8.2f} G/s   "
              f"stacked ({stack:>3} nets) {together / 1e9:8.2f} G/s   x{together / alone:6.1f}", flush=True)
    return measured


def projection(groups: dict[Path, list[list]], measured: dict[tuple[int, int, int], tuple[float, float]],
               unit: str) -> float:
    """Device-seconds per spec at the measured rates (`unit` names the device kind); returns the total."""
    total = 0.0
    for spec, spec_groups in groups.items():
        seconds = 0.0
        for group in spec_groups:
            stage = REGISTRY[group[0].stage]
            shape = shape_of(group[0].params) if stage.trains else None
            alone, together = measured.get(shape, (None, None)) if shape else (None, None)
            rate = (together if group[0].stack else alone) or min(a for a, _ in measured.values())
            seconds += group_cost(group) / rate
        total += seconds
        print(f"{spec.relative_to(REPO)}: {seconds / 60:8.1f} {unit}-minutes projected", flush=True)
    print(f"the full paper: {total / 3600:.2f} {unit}-hours projected", flush=True)
    return total


class Utilisation(threading.Thread):
    """GPU utilisation (percent) sampled from nvidia-smi twice a second until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout.split()
                self.samples.append(float(out[0]))
            except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
                pass
            self.stopped.wait(0.5)


def whole(target: str, cores: int) -> None:
    """Run a spec or folder through the workflow with nets stacked on the GPU; print the figures."""
    with tempfile.TemporaryDirectory() as results:
        sampler = Utilisation()
        sampler.start()
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pl_dsl", "run", target, "--cores", str(cores), "--results",
                               results, "--", "--config", "stack=on", "--resources", "gpu=1"],
                              cwd=REPO, capture_output=True, text=True)
        wall = time.perf_counter() - start
        sampler.stopped.set()
        sampler.join()
        if done.returncode != 0:
            print(f"{target}: failed\n{done.stderr[-2000:]}", flush=True)
            return
        nets = sum(1 for stage in ("train_f", "train_g") for _ in (Path(results) / "store" / stage).glob("*/record.json"))
        util = (f"GPU utilisation mean {statistics.mean(sampler.samples):.0f} %, max {max(sampler.samples):.0f} %"
                if sampler.samples else "GPU utilisation not sampled (no nvidia-smi)")
        print(f"{target}: {wall:.1f} s wall, {nets} nets trained ({nets / wall:.1f} nets/s), {util}", flush=True)


REFERENCE_SPEC = REPO / "experiments" / "reference" / "shifted_gauss_a_cuda.yaml"


def reference(cores: int) -> None:
    """Their runs with their draws in fp16 on this GPU, then the claims against their figure."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pl_dsl", "run", str(REFERENCE_SPEC), "--cores", str(cores)],
                          cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{REFERENCE_SPEC.name}: failed\n{done.stderr[-2000:]}", flush=True)
        return
    print(f"{REFERENCE_SPEC.name}: {time.perf_counter() - start:.1f} s wall; its figure is under "
          f"results/reference-shifted_gauss_a-cuda/", flush=True)
    subprocess.run([sys.executable, "-m", "pl_dsl", "results", str(REFERENCE_SPEC)], cwd=REPO)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--run", nargs="*", default=[], help="full-scale specs to run whole, besides the CPU tier")
    parser.add_argument("--cores", type=int, default=4, help="cores for the workflow's local jobs")
    parser.add_argument("--specs", nargs="*", type=Path, help="specs to project (default: experiments/paper/*.yaml)")
    parser.add_argument("--reference", action="store_true",
                        help="also run the authors' Shifted Gauss (a) runs with their draws in fp16 (step 4)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device: nothing measured (--device cpu checks the script on the CPU)")
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"torch {torch.__version__} on {name}", flush=True)
    specs = [spec.resolve() for spec in args.specs] if args.specs else sorted((REPO / "experiments/paper").glob("*.yaml"))
    groups = stacked_groups(specs)
    shapes: dict[tuple[int, int, int], int] = {}
    for spec_groups in groups.values():
        for group in spec_groups:
            if REGISTRY[group[0].stage].trains:
                shape = shape_of(group[0].params)
                shapes[shape] = max(shapes.get(shape, 0), len({u.trajectory for u in group}))
    measured = rates(device, shapes)
    if device.type == "cuda":
        whole("paper-small", args.cores)
        for target in args.run:
            whole(target, args.cores)
        if args.reference:
            reference(args.cores)
    projection(groups, measured, "GPU" if device.type == "cuda" else "CPU")


if __name__ == "__main__":
    main()
