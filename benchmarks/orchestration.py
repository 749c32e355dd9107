"""Orchestration overhead: the same 24-run synthetic sweep run two ways, side by side.

1. `snakemake --cores 2` from scratch (batched stage jobs, one process each);
2. the same runs one after another in a single fresh Python process, each run end to end
   (train f, attack, train g, evaluate), as a hand-written loop does;
3. the same loop but sharing stage artifacts between runs exactly as the workflow does
   (f trained once per width and learning rate), which isolates pure orchestration overhead.

Prints the wall times and the ratios orchestrated / in-process. Usage:
python benchmarks/orchestration.py [--cores 2] [--scheduler greedy|ilp]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SPEC = """\
name: bench
description: 6 widths x 2 learning rates x 2 eps, Shifted Gauss (a) at the paper's d, N, T.
data: {kind: shifted_gauss, dim: 100, n_train: 1000, n_test: 1000}
training: {loss: identity, steps: 1000, lr: 1.0, momentum: 0.9, schedule: plateau}
attack: {norm: l2, targets: balanced}
seeds: [0]
sweep:
  grid:
    network.width: [10, 20, 50, 100, 200, 500]
    training.lr: [1.0, 0.1]
    attack.eps: [0.01, 0.02]
"""

IN_PROCESS = """
import sys
from pathlib import Path
from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import run_units
from pl_dsl.engine.workspace import run_in_process
from pl_dsl.spec.check import load_experiment
from pl_dsl.stages import REGISTRY
experiment = load_experiment(sys.argv[1])
units = [run_units(run, REGISTRY) for run in experiment.runs]
if sys.argv[3] == "shared":
    run_in_process(units, Layout(Path(sys.argv[2])), REGISTRY)
else:  # every run on its own: nothing is shared between runs
    for index, run in enumerate(units):
        run_in_process([run], Layout(Path(sys.argv[2]) / str(index)), REGISTRY)
"""


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--scheduler", default=None, help="Snakemake job scheduler (default: the profile's)")
    args = parser.parse_args()
    extra = ["--scheduler", args.scheduler] if args.scheduler else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        spec = root / "bench.yaml"
        spec.write_text(SPEC)
        (root / "smk").mkdir()
        orchestrated = timed([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(root / "smk"),
                              "--cores", str(args.cores), "--config", f"experiments={spec}", "--quiet", *extra], root)
        jobs = sum(1 for _ in (root / "smk/results/batches").rglob("*.json"))
        alone = timed([sys.executable, "-c", IN_PROCESS, str(spec), str(root / "alone"), "alone"], root)
        shared = timed([sys.executable, "-c", IN_PROCESS, str(spec), str(root / "shared"), "shared"], root)
    print("24 runs (6 widths x 2 lr x 2 eps), Shifted Gauss (a), d=100, N=1000, T_f=T_g=1000")
    print(f"snakemake --cores {args.cores} from scratch       : {orchestrated:6.1f} s"
          f"  ({jobs} stage jobs + collect + plot)")
    print(f"one process, each run end to end        : {alone:6.1f} s  (f trained 24 times)")
    print(f"one process, sharing f like the workflow: {shared:6.1f} s  (f trained 12 times)")
    print(f"ratio snakemake / run-by-run loop       : {orchestrated / alone:6.2f}")
    print(f"ratio snakemake / sharing loop          : {orchestrated / shared:6.2f}")


if __name__ == "__main__":
    main()
