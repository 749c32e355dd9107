"""The SLURM profile on a real one-node SLURM cluster started by the test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pl_dsl.engine.workflow import SnakemakeBridge

from conftest import REPO, rows_without_times, snakemake
from slurm_cluster import local_slurm, unavailable_reason

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None and os.environ.get("PL_DSL_REQUIRE_SLURM") != "1",
                                reason=f"no local SLURM: {REASON}")

# Options for the test cluster only: it keeps no accounting (so status comes from squeue), has
# no accounts, and answers fast.
TEST_CLUSTER_OPTIONS = ["--slurm-status-command", "squeue", "--slurm-no-account",
                        "--slurm-init-seconds-before-status-checks", "1"]


# The tiny spec plus one point with a large training set: its batches ask for more memory. With
# FUSE the small point's components run as fused jobs, the large point's stage by stage. The large
# point is as small as still asks for more memory (200 000: 1200 MB against the fused jobs' 1100;
# 150 000 would be fused too): its jobs then end before the plugin's second status check (12 s after
# submitting; the next comes 21 s later), 119 s in all here against 160 s at 400 000.
FUSE = "fuse_seconds=0.5"
SIZES = (REPO / "tests/specs/valid/tiny.yaml").read_text().replace("name: tiny", "name: sizes").replace(
    "  grid:\n", "  grid:\n    data.n_train: [40, 200000]\n")


def test_slurm_profile_gives_the_local_results_cost_derived_resources_and_gpus(tmp_path: Path) -> None:
    assert REASON is None, REASON
    spec = tmp_path / "sizes.yaml"
    spec.write_text(SIZES)
    on_cluster, local = tmp_path / "cluster", tmp_path / "local"
    on_cluster.mkdir()
    local.mkdir()
    command = ["timeout", "-k", "10", "400", sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"),
               "-d", str(on_cluster), "--profile", str(REPO / "profiles/slurm"), "--config", f"experiments={spec}",
               FUSE, *TEST_CLUSTER_OPTIONS]
    with local_slurm(tmp_path / "slurm"):
        result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    submitted = result.stdout.count("submitted with SLURM jobid") + result.stderr.count("submitted with SLURM jobid")
    assert submitted >= 4
    reference = snakemake(local, "--config", f"experiments={spec}")
    assert reference.returncode == 0
    assert rows_without_times(on_cluster / "results/sizes/results.csv") == \
        rows_without_times(local / "results/sizes/results.csv")
    manifests = list((on_cluster / "results/batches").rglob("*.json"))
    assert manifests
    plan = SnakemakeBridge({"experiments": str(spec), "fuse_seconds": 0.5}, REPO).plan
    assert {manifest.parent.name for manifest in manifests} >= {"fused", "train_f", "train_g"}
    memory = set()
    for manifest in manifests:
        content = json.loads(manifest.read_text())
        # Every stage job that may use CUDA declared gpu=1, so SLURM gave it a (fake) device.
        assert content["gpu"]["cuda_visible_devices"] in ("0", "1"), manifest
        # What each job asked for is its batch's cost-model estimate, and SLURM granted it.
        expected = plan.batches[(content["stage"], manifest.stem)].resources()
        assert content["requested"] == {name: str(value) for name, value in expected.items()}, manifest
        if content["stage"] in ("fused", "train_f", "train_g"):  # not grouped: the job's memory is the batch's
            assert content["slurm"]["MinMemoryNode"] == f"{expected['mem_mb']}M", json.dumps(content)
            assert content["slurm"]["TimeLimit"] == f"00:{expected['runtime']:02d}:00", json.dumps(content)
            memory.add(expected["mem_mb"])
    assert len(memory) > 1, f"every training batch asked for the same memory: {memory}"
    # The small stages ran grouped, GPU stages apart from the report jobs.
    output = result.stdout + result.stderr
    assert "group_attacks" in output and "group_checks" in output and "group_report" in output
