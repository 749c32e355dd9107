"""`pl-dsl rm NAME` removes an experiment's results folder and the stored units only it used,
listing first (like gc) and deleting with --yes; units another experiment uses stay."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli, write_spec

KEEP = """name: keep
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 20}
training: {steps: 20, lr: 1.0, momentum: 0.0, schedule: constant}
attack: {targets: balanced}
seeds: [0, 1]
"""
DROP = KEEP.replace("name: keep", "name: drop") + "sweep:\n  grid:\n    train_g.lr: [1.0, 0.1]\n"


def units_of(workdir: Path, name: str) -> set[tuple[str, str]]:
    return {item for metrics in (workdir / "results" / name / "runs").glob("*/metrics.json")
            for item in json.loads(metrics.read_text())["units"].items()}


def test_rm_lists_then_removes_only_what_no_other_experiment_uses(tmp_path: Path) -> None:
    keep, drop = write_spec(tmp_path, "keep", KEEP), write_spec(tmp_path, "drop", DROP)
    assert run_cli("run", str(keep), str(drop), "--cores", "2", cwd=tmp_path).returncode == 0
    kept, dropped = units_of(tmp_path, "keep"), units_of(tmp_path, "drop")
    only = dropped - kept
    assert only and {stage for stage, _ in only} == {"train_g", "evaluate"}  # lr 0.1's g; f and the attack are shared
    listed = run_cli("rm", "drop", cwd=tmp_path)
    assert listed.returncode == 0 and "run again with --yes to delete" in listed.stdout
    assert (tmp_path / "results/drop").is_dir()  # nothing deleted yet
    for stage, key in only:
        assert f"would remove results/store/{stage}/{key}" in listed.stdout
    assert "results/store/train_f/" not in listed.stdout
    removed = run_cli("rm", "drop", "--yes", cwd=tmp_path)
    assert removed.returncode == 0 and "freed" in removed.stdout
    assert not (tmp_path / "results/drop").exists()
    assert not any((tmp_path / "results/store" / stage / key).exists() for stage, key in only)
    assert all((tmp_path / "results/store" / stage / key / "record.json").exists() for stage, key in kept)
    assert "Nothing to be done" in run_cli("run", str(keep), "-n", cwd=tmp_path).stdout
    gone = run_cli("rm", "drop", cwd=tmp_path)
    assert gone.returncode == 2 and "'drop' names nothing" in gone.stderr
