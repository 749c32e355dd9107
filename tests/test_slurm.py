"""The SLURM profile on a real one-node SLURM cluster started by the test."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, snakemake
from slurm_cluster import local_slurm, unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None and os.environ.get("PL_DSL_REQUIRE_SLURM") != "1",
                                reason=f"no local SLURM: {REASON}")

# Options for the test cluster only: it keeps no accounting (so status comes from squeue), has
# no accounts, and answers fast.
TEST_CLUSTER_OPTIONS = ["--slurm-status-command", "squeue", "--slurm-no-account",
                        "--slurm-init-seconds-before-status-checks", "1"]


def rows_without_times(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if not k.startswith("time")} for row in csv.DictReader(handle)]


def test_slurm_profile_gives_the_local_results_and_gpus_to_gpu_jobs(tmp_path: Path) -> None:
    assert REASON is None, REASON
    spec = REPO / "tests/specs/valid/tiny.yaml"
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    on_cluster.mkdir()
    local.mkdir()
    command = ["timeout", "-k", "10", "300", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
               "-d", str(on_cluster), "--profile", str(REPO / "profiles/slurm"), "--config", f"experiments={spec}",
               *TEST_CLUSTER_OPTIONS]
    with local_slurm(tmp_path / "slurm"):
        result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    submitted = result.stdout.count("submitted with SLURM jobid") + result.stderr.count("submitted with SLURM jobid")
    assert submitted >= 4
    reference = snakemake(local, "--config", f"experiments={spec}")
    assert reference.returncode == 0
    assert rows_without_times(on_cluster / "results/tiny/results.csv") == \
        rows_without_times(local / "results/tiny/results.csv")
    # Every stage job that may use CUDA declared gpu=1, so SLURM gave it a (fake) device.
    manifests = list((on_cluster / "results/batches").rglob("*.json"))
    assert manifests
    for manifest in manifests:
        assert json.loads(manifest.read_text())["gpu"]["cuda_visible_devices"] in ("0", "1"), manifest
    # The small stages ran grouped: their cluster jobs are named after the groups.
    output = result.stdout + result.stderr
    assert "group_attacks" in output and "group_finish" in output
