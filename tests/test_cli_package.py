"""The CLI's shape: thin click commands over functions that return data (and raise CommandError
with an exit code), rendering apart, no module over ~250 lines."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from pl_dsl.cli.common import CommandError
from pl_dsl.engine.paths import Layout
from pl_dsl.project import project_registry as default_registry

from conftest import REPO

TINY = "tests/specs/valid/tiny.yaml"
INVALID = "tests/specs/invalid/bad_sweep.yaml"


def test_no_module_of_the_cli_is_long() -> None:
    lengths = {path.name: len(path.read_text(encoding="utf-8").splitlines())
               for path in (REPO / "pl_dsl/cli").glob("*.py")}
    assert len(lengths) >= 6 and max(lengths.values()) <= 250, lengths


def test_only_the_render_module_builds_tables() -> None:
    for path in (REPO / "pl_dsl/cli").glob("*.py"):
        if path.name != "render.py":
            assert "Table(" not in path.read_text(encoding="utf-8"), path.name


def test_validation_is_data_and_prints_nothing(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from pl_dsl.cli.specs import validate_files

    monkeypatch.chdir(REPO)
    validation = validate_files([TINY, INVALID, TINY], default_registry())
    assert capsys.readouterr() == ("", "")
    good, bad, _ = validation.checked
    assert good.experiment is not None and len(good.experiment.runs) == 6 and not good.errors
    assert bad.experiment is None and bad.errors and all(e.file == INVALID for e in bad.errors)
    assert validation.clashes == {good.experiment.name: [TINY, TINY]}
    assert validation.code == 1
    assert validate_files([TINY], default_registry()).code == 0


def test_summary_is_data(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from pl_dsl.cli.specs import summarize

    monkeypatch.chdir(REPO)
    registry = default_registry()
    launched = summarize([Path(TINY), Path(INVALID)], registry)
    assert capsys.readouterr() == ("", "")
    (file, runs, units, hours), = launched.rows
    assert (file, runs) == (TINY, 6) and len(units) == len(registry.names) and hours > 0
    assert units[list(registry.names).index("train_g")] >= 1
    assert launched.errors and launched.errors[0].file == INVALID


def test_a_missing_experiment_is_a_command_error_naming_where_it_looked(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from pl_dsl.cli.results import compare_experiments, stored_table

    monkeypatch.chdir(tmp_path)
    layout = Layout(tmp_path / "results")
    with pytest.raises(CommandError) as missing:
        stored_table("nothing-here", layout)
    assert missing.value.code == 2 and "'nothing-here' names nothing" in missing.value.message
    with pytest.raises(CommandError):
        compare_experiments("a", "b", [], layout, default_registry().metrics())


def test_status_of_an_empty_results_folder_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pl_dsl.cli.store import status_of

    monkeypatch.chdir(tmp_path)
    report = status_of((), Layout(tmp_path / "results"), default_registry(), verify=False)
    assert report.state is None and report.damaged == [] and report.notes == []


def test_paper_tables_parse_back() -> None:
    from pl_dsl.cli.results import paper_table

    rows = [{"run": f"r{i}", "status": "ok", "m": str(m), "seed": str(s), "agreement": str(0.5 + i / 10)}
            for i, (m, s) in enumerate([(10, 0), (10, 1), (100, 0), (100, 1)])]
    table = list(csv.DictReader(io.StringIO(paper_table(rows, ["m", "seed"], ["agreement"], "csv", True, "mean",
                                                        True))))
    assert [(row["m"], row["seeds"]) for row in table] == [("10", "2"), ("100", "2")]
    assert float(table[0]["agreement_mean"]) == pytest.approx(0.55)
    markdown = paper_table(rows, ["m", "seed"], ["agreement"], "markdown", False, "mean", True).splitlines()
    assert markdown[0].replace(" ", "") == "|run|m|seed|agreement|" and len(markdown) == 2 + len(rows)
