"""Time and peak memory of one decision map (the paper's Figure 2) in the quickstart setting.

Trains f and g for one Shifted-Gauss (a) run (d=100, m=100, T=1000, balanced targets) in a
fresh process, then draws a RES x RES map over N training points; prints the map's time and
the process's peak resident memory. Usage:
python benchmarks/decision_map.py [--resolution 400] [--n-train 1000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import run_units
from pl_dsl.engine.runner import UnitRunner
from pl_dsl.spec.check import check_text
from pl_dsl.stages import REGISTRY

SPEC = """
name: map-bench
data: {{kind: shifted_gauss, dim: 100, n_train: {n}, n_test: 1000}}
network: {{width: 100}}
training: {{steps: 1000, lr: 1.0}}
attack: {{eps: 0.01, targets: balanced}}
decision_map: {{enabled: true, resolution: {res}}}
device: cpu
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=int, default=400)
    parser.add_argument("--n-train", type=int, default=1000)
    args = parser.parse_args()
    experiment, errors = check_text(SPEC.format(n=args.n_train, res=args.resolution), "map-bench.yaml")
    assert not errors, errors
    units = run_units(experiment.runs[0], REGISTRY)
    with tempfile.TemporaryDirectory() as tmp:
        workspace = UnitRunner(Layout(Path(tmp)), REGISTRY)
        for stage in ("train_f", "attack", "train_g"):
            workspace.compute(units[stage])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        workspace.compute(units["decision_map"])
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"decision map {args.resolution}x{args.resolution}, N={args.n_train}, d=100, m=100 (CPU)")
    print(f"time (grid, f, g, f-hat, g-hat, figure, arrays): {seconds:6.1f} s")
    print(f"peak resident memory of the process: {peak:7.0f} MiB (before the map: {before:.0f} MiB)")


if __name__ == "__main__":
    main()
