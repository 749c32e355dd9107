"""How close a sweep's training comes to what this machine can compute, and pl-dsl against the
authors' own loop, side by side in one run.

1. The machine's limit: the fp32 matrix-product rate of one core at the sweep's shapes (the
   forward product x W^T and the backward product phi'^T (g x), both N x d x m), measured here
   before every round of sweeps and after the last (the highest kept), times the cores.
2. The sweep (benchmarks/performance.py's 12 configurations: m in {10, 100, 1000} x lr_f x lr_g
   in {1.0, 0.1}; Shifted Gauss (a), d=100, N=1000, T_f=T_g=1000) through `pl-dsl run --cores 2`
   from empty: its useful multiply-adds (two N x d x m products per training step, two per
   attack step, one forward pass per evaluated sample: counted from each unit's parameters)
   divided by (its wall time x the limit) is the fraction of the compute limit.
3. The same 12 configurations as the authors run them: their train.py once per configuration,
   one after another as their bash/train.sh loop does (tests/authors_train.py's environment, CPU
   fp32), and the ratio of the two wall times. Target (issue "Costs that scale"): >= 4x; the
   fraction >= 0.7.

With --baseline DIR (a checkout of an earlier pl-dsl), the sweep is also run with that code
(its package first on PYTHONPATH), the two taking turns in each of the --repeat rounds.

Usage: python benchmarks/compute_limit.py [--repeat N] [--no-authors] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from authors_train import AUTHORS_PYTHON, REFERENCE  # noqa: E402

CORES = 2
N, DIM, STEPS, WIDTHS, RATES = 1000, 100, 1000, (10, 100, 1000), (1.0, 0.1)
SWEEP = f"""name: sweep12
data: {{kind: shifted_gauss, dim: {DIM}, n_train: {N}, n_test: 1000, mean_shift: 0.3}}
network: {{width: 100, leaky_slope: 0.0}}
training: {{loss: identity, steps: {STEPS}, lr: 1.0, optimizer: sgd, momentum: 0.9, schedule: plateau}}
attack: {{norm: l2, eps: 0.01, targets: random}}
scenario: a
seeds: [0]
sweep:
  grid:
    network.width: {list(WIDTHS)}
    train_f.lr: {list(RATES)}
    train_g.lr: {list(RATES)}
"""


def matmul_rate(width: int, repeat: int = 30) -> float:
    """Multiply-adds per second of one core for the two N x d x m products of a training step."""
    torch.set_num_threads(1)
    x, weight, factor = torch.randn(N, DIM), torch.randn(width, DIM), torch.randn(N, width)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        torch.mm(x, weight.t())
        torch.mm(factor.t(), x)
        best = min(best, time.perf_counter() - start)
    return 2.0 * N * DIM * width / best


def useful_multiply_adds(spec: Path) -> dict[int, float]:
    """Per width, the sweep's necessary multiply-adds: its distinct units (f shared across g's lrs)."""
    from pl_dsl.engine.plan import UnitMemo, run_units
    from pl_dsl.spec.check import load_experiment
    from pl_dsl.stages import REGISTRY

    experiment = load_experiment(str(spec))
    memo, per_width = UnitMemo(), dict.fromkeys(WIDTHS, 0.0)
    units = {unit.key: unit for run in experiment.runs for unit in run_units(run, REGISTRY, memo=memo).values()}
    for unit in units.values():
        width, params = unit.params["network"]["width"], unit.params
        forward = N * DIM * width  # one forward pass over D (the test set has N samples too)
        per_width[width] += {"train_f": 2.0 * params["train"]["steps"] if "train" in params else 0.0,
                             "train_g": 2.0 * params["train"]["steps"] if "train" in params else 0.0,
                             "attack": 2.0 * params["attack"]["steps"] if "attack" in params else 0.0,
                             "evaluate": 4.0}.get(unit.stage, 0.0) * forward  # f and g on D and on the test set
    return per_width


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - start


def ours(repeat: int, codes: list[Path | None], each_round: Callable[[], None]) -> tuple[list[list[float]], Path]:
    """Wall times of `pl-dsl run --cores 2` of the sweep from empty, for each checkout in `codes`
    (its pl-dsl first on PYTHONPATH; None: this one), taking turns in every round (the first of
    one round the last of the next) so that a drift of the machine's speed falls on each alike,
    each_round() called before every round; the spec's path."""
    folder = Path(tempfile.mkdtemp(prefix="pl-dsl-limit-"))
    spec = folder / "sweep12.yaml"
    spec.write_text(SWEEP)
    walls: list[list[float]] = [[] for _ in codes]
    for attempt in range(repeat):
        each_round()
        order = list(enumerate(codes))
        for index, code in order if attempt % 2 == 0 else order[::-1]:
            workdir = folder / f"run{attempt}-{index}"
            workdir.mkdir()
            walls[index].append(timed([sys.executable, "-m", "pl_dsl", "run", str(spec), "--cores", str(CORES)],
                                      workdir, {"PYTHONPATH": str(code)} if code else None))
    return walls, spec


def theirs() -> float:
    """Wall time of their train.py once per configuration, one after another (their loop)."""
    if not AUTHORS_PYTHON.exists():
        sys.exit(f"their environment is missing ({AUTHORS_PYTHON}): bash .ci/authors_env.sh builds it")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pl-dsl-theirs-") as tmp:
        for width in WIDTHS:
            for lr_f in RATES:
                for lr_g in RATES:
                    # hidden_dim slope loss lr_1 lr_2 epochs_1 epochs_2 perturbation_size seed device, then the data
                    timed([str(AUTHORS_PYTHON), str(REFERENCE / "train.py"), str(width), "0.0", "identity", str(lr_f),
                           str(lr_g), str(STEPS), str(STEPS), "0.01", "0", "0", "synthetic", str(DIM),
                           "shifted_gauss", str(N)], Path(tmp))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2, help="runs of pl-dsl's sweep, best taken (default 2)")
    parser.add_argument("--no-authors", action="store_true", help="leave out the authors' loop")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier pl-dsl to run the sweep with too")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more")
    if args.baseline and not (args.baseline / "pl_dsl" / "__init__.py").exists():
        parser.error(f"--baseline {args.baseline}: no pl-dsl checkout there (no pl_dsl/__init__.py); "
                     "`git worktree add DIR COMMIT` makes one")
    # The limit at the machine's best: this machine's rate moves by a quarter within minutes, so the
    # rates are measured before every round of sweeps and after the last, and the highest kept.
    rates = dict.fromkeys(WIDTHS, 0.0)

    def measure_rates() -> None:
        rates.update({width: max(rate, matmul_rate(width)) for width, rate in rates.items()})

    (walls, *baseline), spec = ours(args.repeat, [None] + ([args.baseline.resolve()] if args.baseline else []),
                                    measure_rates)
    wall, before = min(walls), [min(runs) for runs in baseline]
    measure_rates()
    for width, rate in rates.items():
        print(f"fp32 matmul rate at N={N}, d={DIM}, m={width}: {rate / 1e9:5.1f} G multiply-adds/s per core "
              f"(the best of {args.repeat + 1} measurements, one before each round and one at the end)")
    useful = useful_multiply_adds(spec)
    at_limit = sum(macs / (CORES * rates[width]) for width, macs in useful.items())
    print(f"pl-dsl run of the 12-configuration sweep (--cores {CORES}, from empty, best of {args.repeat}): {wall:.1f} s"
          f"  (runs: {', '.join(f'{w:.1f}' for w in walls)} s)")
    print(f"useful multiply-adds {sum(useful.values()):.3g}: {at_limit:.1f} s at the limit ({CORES} cores at the "
          f"rates above): fraction of the compute limit {at_limit / wall:.2f}  (target >= 0.70)")
    if before:
        print(f"the same with the pl-dsl of {args.baseline} (runs alternating with this one's): {before[0]:.1f} s: "
              f"fraction {at_limit / before[0]:.2f}; this one is {before[0] / wall:.2f}x faster  "
              f"(runs: {', '.join(f'{w:.1f}' for w in baseline[0])} s)")
    if not args.no_authors:
        their_wall = theirs()
        print(f"the authors' loop (their train.py once per configuration): {their_wall:.1f} s: pl-dsl is "
              f"{their_wall / wall:.2f}x faster  (target >= 4x)")


if __name__ == "__main__":
    main()
