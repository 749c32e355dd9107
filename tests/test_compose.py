"""Spec composition through the real CLI: `extends: <path>` (relative to the spec's file, a chain
allowed) merges mappings field by field and replaces lists and scalars; the composed spec and its
flat equivalent have the same run ids and share stored units; errors are located in the file that
holds the line; a cycle is refused naming the chain; `pl-dsl show` prints the resolved YAML."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import run_cli, write_spec

BASE = """name: base
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 20, leaky_slope: 0.0}
training: {steps: 20, lr: 1.0, momentum: 0.0, schedule: constant}
attack: {targets: balanced}
seeds: [0, 1]
"""
MIDDLE = """extends: ../base.yaml
network: {width: 30}
"""
CHILD = """extends: middle.yaml
name: child
seeds: [2]
training: {steps: 25}
"""
FLAT = """name: flat
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 30, leaky_slope: 0.0}
training: {steps: 25, lr: 1.0, momentum: 0.0, schedule: constant}
attack: {targets: balanced}
seeds: [2]
"""


def layout(tmp_path: Path) -> Path:
    write_spec(tmp_path, "base", BASE)
    (tmp_path / "sub").mkdir()
    write_spec(tmp_path / "sub", "middle", MIDDLE)
    write_spec(tmp_path, "flat", FLAT)
    return write_spec(tmp_path / "sub", "child", CHILD)


def test_a_composed_spec_is_its_flat_equivalent(tmp_path: Path) -> None:
    child = layout(tmp_path)
    ids = [[run["id"] for run in json.loads(run_cli("runs", "--json", str(spec)).stdout)]
           for spec in (child, tmp_path / "flat.yaml")]
    assert ids[0] == ids[1] and len(ids[0]) == 1
    shown = run_cli("show", str(child))
    assert shown.returncode == 0, shown.stderr
    assert yaml.safe_load(shown.stdout) == {**yaml.safe_load(FLAT), "name": "child"}
    first = run_cli("run", str(tmp_path / "flat.yaml"), "--cores", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    second = run_cli("run", str(child), "--cores", "2", cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "units per stage: train_f 0 computed, 1 reused; attack 0 computed, 1 reused; train_g 0 computed, " \
           "1 reused; evaluate 0 computed, 1 reused" in second.stdout


def test_errors_are_located_in_the_file_that_holds_the_line(tmp_path: Path) -> None:
    child = layout(tmp_path)
    (tmp_path / "base.yaml").write_text(BASE.replace("leaky_slope: 0.0", "leaky_slope: -2"))
    (tmp_path / "sub/middle.yaml").write_text(MIDDLE.replace("width: 30", "widht: 30"))
    result = run_cli("validate", str(child))
    assert result.returncode == 1
    assert f"{tmp_path / 'base.yaml'}:3:35: network.leaky_slope: -2 is less than the minimum of 0" in result.stderr
    assert f"{tmp_path / 'sub/middle.yaml'}:2:11: network.widht: unknown field (did you mean 'width'?)" in result.stderr


def test_a_cycle_of_bases_is_refused_naming_the_chain(tmp_path: Path) -> None:
    child = layout(tmp_path)
    (tmp_path / "base.yaml").write_text("extends: sub/child.yaml\n" + BASE)
    result = run_cli("validate", str(child))
    assert result.returncode == 1 and "extends: the bases form a cycle: " in result.stderr
    assert f"{child} -> {tmp_path / 'sub/middle.yaml'} -> {tmp_path / 'base.yaml'} -> {child}" in result.stderr
    missing = write_spec(tmp_path, "missing", "extends: nowhere.yaml\nname: missing\n")
    result = run_cli("validate", str(missing))
    assert result.returncode == 1 and f"cannot read the base spec {tmp_path / 'nowhere.yaml'}" in result.stderr


def test_a_misspelt_base_and_a_key_given_twice_in_a_base_are_told(tmp_path: Path) -> None:
    """A base path with a typo suggests the spec beside it; a key given twice in a base is an error
    located in the base, reported with the child's own errors."""
    child = layout(tmp_path)
    typo = write_spec(tmp_path, "typo", "extends: bsae.yaml\nname: typo\n")
    result = run_cli("validate", str(typo))
    assert result.returncode == 1 and "(did you mean 'base.yaml'?)" in result.stderr
    (tmp_path / "base.yaml").write_text(BASE.replace("leaky_slope: 0.0", "leaky_slope: 0.0, leaky_slope: 0.1"))
    (tmp_path / "sub/middle.yaml").write_text(MIDDLE.replace("width: 30", "widht: 30"))
    result = run_cli("validate", str(child))
    assert f"{tmp_path / 'base.yaml'}:3:" in result.stderr and "key 'leaky_slope' appears twice" in result.stderr
    assert "network.widht: unknown field" in result.stderr
