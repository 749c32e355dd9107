"""What cluster jobs ask for: runtime and memory from the stages' cost model, GPUs only for stages."""

from __future__ import annotations

from pathlib import Path

import yaml

from pl_dsl.engine.plan import RUNTIME_FLOOR_MINUTES, estimated_seconds
from pl_dsl.engine.workflow import SnakemakeBridge
from pl_dsl.stages import REGISTRY

from conftest import REPO, write_spec

SMALL_AND_LARGE = """
name: sizes
data: {kind: shifted_gauss, dim: 1000, n_test: 100}
network: {width: 1000}
training: {steps: 100}
sweep:
  grid:
    data.n_train: [100, 50000]
"""


def test_batch_resources_follow_the_cost_model(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "sizes", SMALL_AND_LARGE)
    bridge = SnakemakeBridge({"experiments": str(spec), "min_batches": 2, "batch_size": {"train_f": 1}, "fuse_seconds": 0}, REPO)
    batches = [b for (stage, _), b in bridge.plan.batches.items() if stage == "train_f"]
    small, large = sorted(batches, key=lambda b: b.units[0].cost)
    assert small.resources() == {"runtime": RUNTIME_FLOOR_MINUTES, "mem_mb": 1100}
    # 50000 x 1000 inputs, 50000 x 1000 activations: hundreds of MB, and minutes of compute.
    seconds = estimated_seconds(large.units[0].cost)
    assert large.resources()["runtime"] > RUNTIME_FLOOR_MINUTES and large.resources()["runtime"] >= 3 * seconds / 60
    assert large.resources()["mem_mb"] >= 1000 + 2 * 4 * 50000 * 1000 * 5 / 2**20
    assert large.resources(max_runtime=12)["runtime"] == 12
    # The rules' resource functions give the same numbers.
    wildcards = type("W", (), {"batch": large.id})
    assert bridge.resource("train_f", "mem_mb")(wildcards) == large.resources()["mem_mb"]
    assert SnakemakeBridge({"experiments": str(spec), "batch_size": {"train_f": 1}, "max_runtime": 12, "fuse_seconds": 0},
                    REPO).resource("train_f", "runtime")(wildcards) == 12


def test_cluster_groups_never_mix_gpu_stages_with_report_jobs() -> None:
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    groups: dict[str, set[str]] = {}
    for entry in profile["groups"]:
        rule, group = entry.split("=")
        groups.setdefault(group, set()).add(rule)
    stages = {stage.name for stage in REGISTRY if stage.gpu}
    for group, rules in groups.items():
        assert rules <= stages or not rules & stages, f"group {group} mixes GPU stages and CPU-only jobs: {rules}"
    assert "gpu" not in (REPO / "rules/report.smk").read_text()
