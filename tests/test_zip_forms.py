"""One zip form: `sweep.zip` takes a mapping of paths to equal-length lists, as a panel's
`vary.zip` does (the list of such mappings still works, one axis each); both give the same runs,
and a zip of another shape is an error that shows the expected shape with an example."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO, run_cli, write_spec

LISTED = (REPO / "tests/specs/valid/zipped_dims.yaml").read_text()
MAPPED = LISTED.replace("    - data.dim: [10, 20, 50]\n      data.n_train: [20, 40, 100]",
                        "    data.dim: [10, 20, 50]\n    data.n_train: [20, 40, 100]")


def test_the_mapping_form_gives_the_runs_of_the_list_form(tmp_path: Path) -> None:
    assert MAPPED != LISTED
    runs = [json.loads(run_cli("runs", "--json", str(write_spec(tmp_path, name, text))).stdout)
            for name, text in (("listed", LISTED), ("mapped", MAPPED))]
    assert [r["id"] for r in runs[0]] == [r["id"] for r in runs[1]] and len(runs[0]) == 6
    assert [r["varied"] for r in runs[0]] == [r["varied"] for r in runs[1]]


def test_unequal_lists_in_the_mapping_form_are_located(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "unequal", MAPPED.replace("data.n_train: [20, 40, 100]", "data.n_train: [20, 40]"))
    result = run_cli("validate", str(spec))
    assert result.returncode == 1 and ":13:5: sweep.zip: " in result.stderr
    assert "zipped lists must have equal lengths" in result.stderr


def test_a_zip_of_another_shape_shows_the_expected_one(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "bad", MAPPED.replace("    data.dim: [10, 20, 50]\n    data.n_train: [20, 40, 100]",
                                                     "    - data.dim\n    - 10"))
    result = run_cli("validate", str(spec))
    assert result.returncode == 1
    assert "sweep.zip: ['data.dim', 10] does not fit:" in result.stderr
    assert "e.g. `zip: {data.dim: [10, 100], data.n_train: [100, 1000]}`" in result.stderr
