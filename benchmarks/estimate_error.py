"""How far `pl-dsl runs --summary`'s compute estimate is from what the specs take: each spec of a
folder run alone from an empty folder with `pl-dsl run SPEC --cores N`, side by side with its
estimate (at the rate `pl-dsl doctor --calibrate` stored, where there is one).

    python benchmarks/estimate_error.py                          # experiments/paper-small, 2 cores
    python benchmarks/estimate_error.py --specs DIR --cores 4
    python benchmarks/estimate_error.py experiments/paper-small/mnist_a.yaml ...   # these specs only

Per spec: the estimated core-seconds against the compute its units recorded, and the estimated
wall time (estimate / cores, what a reader of the summary would expect) against the measured
wall time of the whole command (start-up, planning, plots and idle cores included).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paper_tier import recorded_computations

from pl_dsl.cli.specs import summarize
from pl_dsl.engine.calibration import load
from pl_dsl.engine.paths import Layout
from pl_dsl.project import project_registry
from pl_dsl.spec.check import load_experiment

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, help="spec files (default: every spec of --specs)")
    parser.add_argument("--specs", type=Path, default=REPO / "experiments/paper-small")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    rate = load().get("cpu")
    print(f"rate: {'calibrated ' + rate['measured'] if rate else 'the cost model fixed rate (no calibration stored)'}")
    print(f"{'spec':<24}{'est. core-s':>12}{'recorded':>10}{'ratio':>7}{'est. wall':>11}{'wall':>8}{'ratio':>7}")
    registry = project_registry()
    compute_ratios, wall_ratios = [], []
    totals = [0.0, 0.0, 0.0, 0.0]
    for spec in [file.resolve() for file in args.files] or sorted(args.specs.resolve().glob("*.yaml")):
        (_, _, _, hours), = summarize([spec], registry).rows
        estimate = hours * 3600
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            done = subprocess.run([str(Path(sys.executable).parent / "pl-dsl"), "run", str(spec), "--cores",
                                   str(args.cores)], cwd=folder, capture_output=True, text=True)
            wall = time.perf_counter() - start
            if done.returncode != 0:
                print(f"{spec.stem:<24}failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
                continue
            _, computations = recorded_computations(Layout(Path(folder) / "results"), load_experiment(spec))
            recorded = sum(computations.values())
        expected_wall = estimate / args.cores
        compute_ratios.append(recorded / estimate)
        wall_ratios.append(wall / expected_wall)
        for i, value in enumerate((estimate, recorded, expected_wall, wall)):
            totals[i] += value
        print(f"{spec.stem:<24}{estimate:>12.1f}{recorded:>10.1f}{recorded / estimate:>7.2f}{expected_wall:>11.1f}"
              f"{wall:>8.1f}{wall / expected_wall:>7.2f}", flush=True)
    if compute_ratios:
        print(f"{'all':<24}{totals[0]:>12.1f}{totals[1]:>10.1f}{totals[1] / totals[0]:>7.2f}{totals[2]:>11.1f}"
              f"{totals[3]:>8.1f}{totals[3] / totals[2]:>7.2f}")
        print(f"recorded / estimated compute: median {statistics.median(compute_ratios):.2f}, "
              f"range {min(compute_ratios):.2f}-{max(compute_ratios):.2f}; wall / (estimate / cores): median "
              f"{statistics.median(wall_ratios):.2f}, range {min(wall_ratios):.2f}-{max(wall_ratios):.2f}")


if __name__ == "__main__":
    main()
