"""One way to name an experiment (engine.names), through the real CLI, from a folder that is not
the project's: a spec path; else the name in the results folder, through the spec recorded
there; else a spec under experiments/ of the current folder. Every command resolves the same
way, `status` alone shows every experiment of the results folder, and a name found nowhere
exits 1 saying where it was looked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, run_cli, write_spec

SPEC = (REPO / "tests/specs/valid/tiny.yaml").read_text().replace("name: tiny", "name: my-width").replace(
    "attack.eps_per_coord: [0.01, 0.02, 0.05]", "attack.eps_per_coord: [0.01, 0.05]")


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder outside the checkout where my-width ran from its spec file (not in experiments/)."""
    workdir = tmp_path_factory.mktemp("outside")
    spec = write_spec(workdir, "width-study", SPEC)
    ran = run_cli("run", spec.name, "--cores", "2", cwd=workdir)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return workdir


def test_every_command_finds_an_experiment_by_its_name_in_the_results_folder(outside: Path) -> None:
    status = run_cli("status", cwd=outside)  # no argument: every experiment of results/
    assert status.returncode == 0 and "my-width: 4 of 4 runs complete" in status.stdout, status.stderr
    named = run_cli("status", "my-width", cwd=outside)
    assert named.returncode == 0 and "my-width: 4 of 4 runs complete" in named.stdout, named.stderr
    shown = run_cli("results", "my-width", cwd=outside)
    assert shown.returncode == 0 and "my-width: 4 runs" in shown.stdout
    listed = run_cli("list", cwd=outside)
    assert "my-width" in listed.stdout and "width-study.yaml" in listed.stdout
    compared = run_cli("compare", "my-width", "my-width", cwd=outside)
    assert compared.returncode == 0 and "0 of 4 matched points differ" in compared.stdout, compared.stdout
    kept = run_cli("gc", "my-width", cwd=outside)
    assert kept.returncode == 0 and "0 unreferenced item(s)" in kept.stdout, kept.stdout + kept.stderr
    exported = run_cli("export", "my-width", "--to", "tensorboard", "--uri", str(outside / "tb"), cwd=outside)
    assert exported.returncode == 0 and "exported 4 runs of my-width" in exported.stdout, exported.stderr
    again = run_cli("run", "my-width", "-n", cwd=outside)  # the spec the results folder records
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_a_spec_path_and_a_spec_under_experiments_name_the_same_experiment(outside: Path, tmp_path: Path) -> None:
    by_path = run_cli("results", str(outside / "width-study.yaml"), "--results", str(outside / "results"), cwd=tmp_path)
    assert by_path.returncode == 0 and "my-width: 4 runs" in by_path.stdout, by_path.stderr
    (tmp_path / "experiments").mkdir()
    write_spec(tmp_path / "experiments", "study", SPEC.replace("name: my-width", "name: fancy-name"))
    for item in ("fancy-name", "study"):  # its `name:` or its file name
        planned = run_cli("run", item, "-n", cwd=tmp_path)
        assert planned.returncode == 0, planned.stderr[-2000:]
        assert "fancy-name" in planned.stdout and "collect_results" in planned.stdout
    missing = run_cli("results", "fancy-name", cwd=tmp_path)
    assert missing.returncode == 1 and "no results for 'fancy-name'" in missing.stderr


@pytest.mark.parametrize("command", [["run"], ["status"], ["results"], ["export", "--to", "mlflow"],
                                     ["compare", "my-width"], ["gc"]], ids=lambda c: c[0])
def test_a_name_found_nowhere_says_where_it_looked(outside: Path, command: list[str]) -> None:
    result = run_cli(*command[:1], "my-widht", *command[1:], cwd=outside)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'my-widht' names nothing" in result.stderr
    assert "no experiment 'my-widht' in results/ (my-width)" in result.stderr
    assert f"no spec named 'my-widht' under {outside / 'experiments'}/ (none there)" in result.stderr
    assert "did you mean 'my-width'" in result.stderr
    assert "Traceback" not in result.stderr
