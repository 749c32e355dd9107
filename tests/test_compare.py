"""`pl-dsl compare A B` compares like with like, through the real CLI: points are matched on every
field either experiment varies (a field one holds fixed takes its value there), rows of B at
another value of a field A holds fixed are listed apart and never averaged in, a point one side
lacks is counted as missing, not as differing, and with no match at all both are shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import run_cli, write_spec

BASE = """name: my-width
data: {kind: shifted_gauss, dim: 10, n_train: 40, n_test: 50}
network: {width: 20}
training: {steps: 30, lr: 1.0, momentum: 0.0, schedule: constant}
attack: {targets: balanced}
seeds: [0]
sweep:
  grid:
    network.width: [10, 20, 40]
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compare")
    specs = [write_spec(folder, "my-width", BASE),
             write_spec(folder, "lr-multi", BASE.replace("name: my-width", "name: lr-multi")
                        + "    training.lr: [0.1, 1.0]\n"),
             write_spec(folder, "narrow", BASE.replace("name: my-width", "name: narrow").replace("[10, 20, 40]", "[10]")),
             write_spec(folder, "seed-one", BASE.replace("name: my-width", "name: seed-one").replace("seeds: [0]", "seeds: [1]")),
             write_spec(folder, "fixed-one", BASE.replace("name: my-width", "name: fixed-one")
                        .replace("seeds: [0]", "seed: 1"))]
    ran = run_cli("run", *map(str, specs), "--cores", "2", cwd=folder)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return folder


def numbers(line: str) -> list[str]:
    return re.findall(r"[-+]?\d+(?:\.\d+)?", line)


def test_rows_at_the_value_a_holds_fixed_are_compared_and_the_others_listed_apart(workdir: Path) -> None:
    result = run_cli("compare", "my-width", "lr-multi", "-m", "g_clean_acc", cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "3 points matched on network.width" in out and "training.lr" in out
    # B's lr = 1.0 runs are A's runs exactly: no difference, nothing averaged with lr = 0.1
    assert "0 of 3 matched points differ (marked *); 0 only in A and 3 only in B" in out
    assert "3 point(s) only in lr-multi (B)" in out
    matched = [line for line in out.splitlines() if line.startswith("│") and "+0" in line]
    assert len(matched) == 3


def test_a_missing_point_is_counted_as_missing_not_as_differing(workdir: Path) -> None:
    out = run_cli("compare", "my-width", "narrow", cwd=workdir).stdout
    assert "1 points matched" in out
    assert "0 of 1 matched points differ (marked *); 2 only in A and 0 only in B" in out
    assert "2 point(s) only in my-width (A)" in out


def test_no_match_at_all_says_so_and_shows_both(workdir: Path) -> None:
    out = run_cli("compare", "my-width", "seed-one", cwd=workdir).stdout
    assert "no point of my-width matches a point of seed-one" in out
    assert "3 point(s) only in my-width (A)" in out and "3 point(s) only in seed-one (B)" in out
    assert "0 of 0 matched points differ" in out


def test_differing_points_are_marked_and_counted_as_marked(workdir: Path) -> None:
    out = run_cli("compare", "lr-multi", "my-width", "-m", "f_train_acc", cwd=workdir).stdout
    marked = [line for line in out.splitlines() if "*" in line and line.startswith("│")]
    count = int(re.search(r"(\d+) of 3 matched points differ", out).group(1))  # type: ignore[union-attr]
    assert count == len(marked) == 0



def test_a_field_both_hold_fixed_at_different_values_is_named(workdir: Path) -> None:
    out = run_cli("compare", "fixed-one", "seed-one", cwd=workdir).stdout
    assert "3 points matched on network.width" in out  # both seed 1, one fixed and one swept
    out = run_cli("compare", "my-width", "fixed-one", cwd=workdir).stdout
    assert "no point of my-width matches" in out  # my-width sweeps seed 0, fixed-one holds seed 1
