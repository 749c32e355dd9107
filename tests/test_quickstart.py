"""The default experiment as the quick start runs it (`pl-dsl run quickstart`): one progress line
and the table, no job blocks; balanced targets must learn on every seed."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import REPO, run_cli


def test_quickstart_balanced_targets_learn_on_every_seed(tmp_path: Path) -> None:
    result = run_cli("run", str(REPO / "experiments/quickstart.yaml"), "--cores", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "runs 8/8 done" in result.stdout and "g_clean_acc" in result.stdout
    assert "rule fused" not in result.stdout + result.stderr and "resources:" not in result.stdout
    with open(tmp_path / "results/quickstart/results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted((r["attack.targets"], int(r["seed"])) for r in rows) == sorted(
        (mode, seed) for mode in ("random", "balanced") for seed in range(4))
    balanced = [r for r in rows if r["attack.targets"] == "balanced"]
    for row in balanced:
        assert float(row["f_train_acc"]) >= 0.99, row
        assert float(row["g_clean_acc"]) >= 0.95, row
        assert float(row["agreement"]) >= 0.95, row
        assert float(row["target_mean"]) == 0.0
    assert all(abs(float(r["pert_norm_mean"]) - 0.01) < 1e-6 for r in rows)
    assert (tmp_path / "results/quickstart/plots/g_by_seed.png").exists()
    assert (tmp_path / "results/quickstart/plots/g_by_seed.svg").exists()
