"""pl-dsl's speed against the plain ways of running the same computation, side by side in one
run, as ratios with their targets (issue: "A run and a sweep cost what their computation costs").

1. a 12-run sweep (width m in {10, 100, 1000} x lr_f x lr_g in {1.0, 0.1}; Shifted Gauss (a),
   d=100, N=1000, T_f=T_g=1000): `snakemake --cores 2` from empty / one Python process that
   computes the same units sharing f, with torch on both cores;               target <= 1.10
2. a T_g sweep of 10 values (100, 200, ..., 1000) / one run at T_g=1000, both through
   snakemake from empty, quickstart setting at width m=1000;                  target <= 1.15
3. one quickstart-setting run (one seed) through snakemake from empty / the same run as a plain
   single-file PyTorch script (benchmarks/plain_run.py);                     target <= 1.80
4. one compute-dominated run (Shifted Gauss (a), d=1000, N=5000, m=1000, T_f=T_g=100) through
   snakemake from empty / the plain script with torch on both cores;         target <= 1.05
5. the CPU paper tier (experiments/paper-small): wall time and the share that is computation
   (benchmarks/paper_tier.py; skipped with --no-paper).

Also, for core-aware threads, both regimes side by side: the sweep with every job given both
cores (`--config threads=2`) and the compute-dominated run with its job forced to one thread
(`--config threads=1`), against the threads the plan derives (one per job for the sweep, both
cores for the single run). Specs have no plots, the plain
script draws none either. Usage: python benchmarks/performance.py [--repeat N] [--no-paper]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORES = 2

QUICKSTART = """
data: {kind: shifted_gauss, dim: 100, n_train: 1000, n_test: 1000, mean_shift: 0.3}
training: {loss: identity, steps: 1000, lr: 1.0, optimizer: sgd, momentum: 0.9, schedule: plateau}
attack: {norm: l2, eps: 0.01, targets: random}
scenario: a
seeds: [0]
"""
SWEEP = "name: sweep12\nnetwork: {width: 100, leaky_slope: 0.0}" + QUICKSTART + """sweep:
  grid:
    network.width: [10, 100, 1000]
    train_f.lr: [1.0, 0.1]
    train_g.lr: [1.0, 0.1]
"""
STEPS_SWEEP = "name: steps10\nnetwork: {width: 1000, leaky_slope: 0.0}" + QUICKSTART + """sweep:
  grid:
    train_g.steps: [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]
"""
STEPS_ONE = "name: steps1\nnetwork: {width: 1000, leaky_slope: 0.0}" + QUICKSTART
ONE_RUN = "name: one\nnetwork: {width: 100, leaky_slope: 0.0}" + QUICKSTART
LARGE = """name: large
data: {kind: shifted_gauss, dim: 1000, n_train: 5000, n_test: 1000, mean_shift: 0.3}
network: {width: 1000, leaky_slope: 0.0}
training: {loss: identity, steps: 100, lr: 1.0, optimizer: sgd, momentum: 0.9, schedule: plateau}
attack: {norm: l2, eps: 0.01, targets: random}
scenario: a
seeds: [0]
"""
PLAIN_QUICKSTART = ["--dim", "100", "--n-train", "1000", "--width", "100", "--steps", "1000", "--threads", str(CORES)]
PLAIN_LARGE = ["--dim", "1000", "--n-train", "5000", "--width", "1000", "--steps", "100", "--threads", str(CORES)]

# In one process, the units of every run (f shared as in the workflow), torch on every core.
IN_PROCESS = """
import sys
from pathlib import Path
from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import run_units
from pl_dsl.engine.runner import run_in_process
from pl_dsl.spec.check import load_experiment
from pl_dsl.stages import REGISTRY
experiment = load_experiment(sys.argv[1])
run_in_process([run_units(run, REGISTRY) for run in experiment.runs], Layout(Path(sys.argv[2])), REGISTRY)
"""


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def snakemake(spec: str, *config: str) -> float:
    """Seconds of `snakemake --cores 2` on a spec, from an empty folder."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(spec)
        return timed([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", tmp, "--cores",
                      str(CORES), "--quiet", "--config", f"experiments={path}", *config], Path(tmp))


def in_process(spec: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(spec)
        return timed([sys.executable, "-c", IN_PROCESS, str(path), str(Path(tmp) / "results")], Path(tmp))


def plain(arguments: list[str]) -> float:
    return timed([sys.executable, str(REPO / "benchmarks/plain_run.py"), *arguments], REPO)


def best(repeat: int, measure: Callable[[], float]) -> float:
    return min(measure() for _ in range(repeat))


def ratio_line(label: str, ours: float, theirs: float, target: float | None) -> str:
    value = ours / theirs
    verdict = "" if target is None else (f"  target <= {target:.2f}: " + ("met" if value <= target else "NOT met"))
    return f"{label:58} {ours:7.1f} s / {theirs:7.1f} s = {value:5.2f}{verdict}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="take the best of N runs of each measurement")
    parser.add_argument("--no-paper", action="store_true", help="leave out the CPU paper tier (minutes)")
    args = parser.parse_args()
    lines = []

    def show(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    print(f"{CORES} cores; each figure the best of {args.repeat}; pairs measured one after the other\n", flush=True)
    sweep = best(args.repeat, lambda: snakemake(SWEEP))
    loop = best(args.repeat, lambda: in_process(SWEEP))
    show(ratio_line("1. 12-run width x lr sweep: snakemake / in-process loop", sweep, loop, 1.10))
    steps_sweep = best(args.repeat, lambda: snakemake(STEPS_SWEEP))
    steps_one = best(args.repeat, lambda: snakemake(STEPS_ONE))
    show(ratio_line("2. T_g sweep of 10 values / one run at T_g = 1000 (m=1000)", steps_sweep, steps_one, 1.15))
    one = best(args.repeat, lambda: snakemake(ONE_RUN))
    script = best(args.repeat, lambda: plain(PLAIN_QUICKSTART))
    show(ratio_line("3. one quickstart run: snakemake / plain script", one, script, 1.80))
    large = best(args.repeat, lambda: snakemake(LARGE))
    large_script = best(args.repeat, lambda: plain(PLAIN_LARGE))
    show(ratio_line("4. d=1000 N=5000 m=1000 T=100: snakemake / plain script", large, large_script, 1.05))
    print("\nthreads per job, both regimes (derived from the plan vs forced):", flush=True)
    show(ratio_line("   sweep: derived (1 per job) / 2 threads per job", sweep,
                    best(args.repeat, lambda: snakemake(SWEEP, f"threads={CORES}")), None))
    show(ratio_line("   large run: derived (2) / 1 thread", large,
                    best(args.repeat, lambda: snakemake(LARGE, "threads=1")), None))
    if not args.no_paper:
        print("\n5. the CPU paper tier (experiments/paper-small), from empty:", flush=True)
        subprocess.run([sys.executable, str(REPO / "benchmarks/paper_tier.py"), "--cores", str(CORES)], check=True)
    print("\nsummary:\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
