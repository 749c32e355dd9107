"""What a SLURM run costs per cluster job, with and without the profile's job grouping.

Starts the one-node test cluster (tests/slurm_cluster.py: root and Debian's slurm packages
needed), runs a small experiment through `--profile profiles/slurm` twice from scratch — as
the profile groups jobs, and with grouping turned off — and prints wall time, cluster jobs
and wall time per job. Usage: python benchmarks/slurm_jobs.py [--spec tests/specs/valid/tiny.yaml]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from slurm_cluster import local_slurm, unavailable_reason  # noqa: E402

TEST_CLUSTER_OPTIONS = ["--slurm-status-command", "squeue", "--slurm-no-account",
                        "--slurm-init-seconds-before-status-checks", "1"]


def run(workdir: Path, spec: Path, extra: list[str]) -> tuple[float, int]:
    workdir.mkdir()
    start = time.perf_counter()
    result = subprocess.run(
        ["timeout", "-k", "10", "600", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
         "-d", str(workdir), "--profile", str(REPO / "profiles/slurm"), "--config", f"experiments={spec}",
         *TEST_CLUSTER_OPTIONS, *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return seconds, (result.stdout + result.stderr).count("submitted with SLURM jobid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", type=Path, default=REPO / "tests/specs/valid/tiny.yaml")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        sys.exit(f"cannot start the test cluster: {reason}")
    with tempfile.TemporaryDirectory() as tmp, local_slurm(Path(tmp) / "slurm"):
        grouped = run(Path(tmp) / "grouped", args.spec.resolve(), [])
        # Replacing the profile's `groups` with a single one-rule group turns grouping off.
        ungrouped = run(Path(tmp) / "ungrouped", args.spec.resolve(), ["--groups", "plot=alone"])
    print(f"experiment {args.spec.name} on a one-node test SLURM (Slurm's own start-up ~1 s per job)")
    for name, (seconds, jobs) in (("grouped (profile)", grouped), ("no grouping", ungrouped)):
        print(f"{name:18s}: {seconds:6.1f} s wall, {jobs:3d} cluster jobs, {seconds / max(jobs, 1):5.1f} s per job")
    saved = ungrouped[0] - grouped[0]
    fewer = ungrouped[1] - grouped[1]
    if fewer > 0:
        print(f"grouping saved {saved:.1f} s for {fewer} fewer jobs: {saved / fewer:.1f} s per cluster job avoided")


if __name__ == "__main__":
    main()
