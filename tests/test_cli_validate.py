"""The real `pl-dsl validate` on the example specs: exit codes and exact messages."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO, run_cli

INVALID = sorted((REPO / "tests/specs/invalid").glob("*.yaml"))
VALID = sorted((REPO / "tests/specs/valid").glob("*.yaml"))
SHIPPED = sorted((REPO / "experiments").rglob("*.yaml"))


@pytest.mark.parametrize("spec", INVALID, ids=lambda p: p.stem)
def test_invalid_spec_reports_every_error_with_its_place(spec: Path) -> None:
    relative = spec.relative_to(REPO)
    result = run_cli("validate", str(relative))
    assert result.returncode == 1
    assert result.stderr == spec.with_suffix(".expected").read_text()
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("spec", sorted((REPO / "tests/specs/warnings").glob("*.yaml")), ids=lambda p: p.stem)
def test_spec_with_a_warning_is_valid_and_says_where(spec: Path) -> None:
    relative = spec.relative_to(REPO)
    result = run_cli("validate", str(relative))
    assert result.returncode == 0
    assert result.stderr == spec.with_suffix(".expected").read_text()
    assert result.stdout.startswith(f"{relative}: valid, ")


@pytest.mark.parametrize("spec", sorted((REPO / "tests/specs/real").glob("*.yaml")), ids=lambda p: p.stem)
def test_sizes_beyond_what_the_data_files_hold_are_errors(spec: Path) -> None:
    from pl_dsl.science.datasets import DataNotFound, locate

    try:
        locate("mnist", None)
    except DataNotFound:
        if os.environ.get("PL_DSL_REQUIRE_REAL_DATA") != "1":
            pytest.skip("MNIST files absent: sizes are checked against them when they are present")
    relative = spec.relative_to(REPO)
    result = run_cli("validate", str(relative))
    assert result.returncode == 1
    assert result.stderr == spec.with_suffix(".expected").read_text()


@pytest.mark.parametrize("spec", VALID + SHIPPED, ids=lambda p: p.stem)
def test_valid_spec_reports_its_run_count(spec: Path) -> None:
    result = run_cli("validate", str(spec.relative_to(REPO)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{spec.relative_to(REPO)}: valid, ")
    assert result.stdout.rstrip().endswith("runs") or result.stdout.rstrip().endswith("run")


def test_several_files_at_once_mix_valid_and_invalid() -> None:
    result = run_cli("validate", "tests/specs/valid/tiny.yaml", "tests/specs/invalid/eps_twice.yaml")
    assert result.returncode == 1
    assert result.stdout == "tests/specs/valid/tiny.yaml: valid, 6 runs\n"
    assert result.stderr.startswith("tests/specs/invalid/eps_twice.yaml:3:3: attack: give either eps")


def test_shipped_specs_start_with_the_schema_line_pointing_at_the_schema() -> None:
    for spec in SHIPPED:
        first = spec.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), spec
        # schemas/ links to the schema the package ships: editors and pl-dsl read one file.
        assert (spec.parent / first.split("=", 1)[1]).resolve() == REPO / "pl_dsl/spec/experiment.schema.json"


@pytest.mark.parametrize("args", [["validate"], ["validate", "no/such/file.yaml"], ["validate", "--bogus", "x"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Usage:" in result.stderr and "Traceback" not in result.stderr


def test_runs_lists_ids_and_varied_values() -> None:
    result = run_cli("runs", "tests/specs/valid/tiny.yaml")
    assert result.returncode == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("│ r")]
    assert len(lines) == 6
    assert "attack.eps_per_coord" in result.stdout and "seed" in result.stdout
    assert "0.05" in lines[-1]


def test_results_without_a_run_says_what_to_do(tmp_path: Path) -> None:
    result = run_cli("results", "quickstart", "--results", str(tmp_path))
    assert result.returncode == 1
    assert "no results for 'quickstart'" in result.stderr and "pl-dsl run quickstart" in result.stderr


def test_the_readme_examples_are_valid_specs(tmp_path: Path) -> None:
    import re
    import textwrap

    blocks = [textwrap.dedent(block) for page in ("README.md", "docs/spec.md")  # a block may sit in a list item
              for block in re.findall(r"```yaml\n(.*?)```", (REPO / page).read_text(), re.S)]
    assert len(blocks) >= 3
    for index, block in enumerate(blocks):
        # a composed example extends one of the paper's specs, relative to experiments/paper/
        block = re.sub(r"^extends: (\S+)", lambda m: f"extends: {REPO / 'experiments/paper' / m.group(1)}", block, flags=re.M)
        spec = tmp_path / f"readme{index}.yaml"
        spec.write_text(block if "\nname:" in "\n" + block
                        else f"name: readme{index}\ndata: {{kind: shifted_gauss}}\n{block}")
        result = run_cli("validate", str(spec))
        assert result.returncode == 0, result.stderr


def test_yaml_1_2_numbers_are_numbers(tmp_path: Path) -> None:
    spec = tmp_path / "exponents.yaml"
    spec.write_text("name: exponents\ntraining: {lr: 1e-3}\nattack: {eps_per_coord: 5E-2}\n"
                    "data: {kind: shifted_gauss, n_train: 10_000}\n")
    result = run_cli("runs", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    resolved = __import__("json").loads(result.stdout)[0]["spec"]
    assert resolved["train_f"]["lr"] == 0.001 and abs(resolved["attack"]["eps"] - 0.05 * 10) < 1e-12  # d = 100
    assert resolved["data"]["n_train"] == 10000


def test_validate_reports_specs_that_share_a_name(tmp_path: Path) -> None:
    one, two = tmp_path / "a.yaml", tmp_path / "b.yaml"
    one.write_text("name: same\ndata: {kind: gauss}\n")
    two.write_text("name: same\ndata: {kind: gauss}\nseeds: [3]\n")
    result = run_cli("validate", str(one), str(two))
    assert result.returncode == 1
    assert f"experiment name 'same' is used by several specs ({one}, {two}); names must be unique" in result.stderr


def test_the_readme_starts_where_users_start_and_stays_short() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    for section in ("## Quick start", "## Writing an experiment", "## Running", "## Results, claims and trackers",
                    "## The paper", "## Commands"):
        assert section in text
    for page in ("docs/spec.md", "docs/internals.md", "docs/performance.md", "docs/cluster.md", "docs/paper.md"):
        assert page in text and (REPO / page).exists()


def test_exit_codes_are_the_documented_table(tmp_path: Path) -> None:
    """One table of exit codes (docs/spec.md, pl_dsl/cli/common.py), and each code where it is meant:
    read input wrong -> 1, the command line wrong -> 2 (test_interrupt.py: 130)."""
    import re

    from pl_dsl.cli.common import EXIT_CODES

    documented = (REPO / "docs/spec.md").read_text(encoding="utf-8").split("## Exit codes")[1]
    table = re.findall(r"^\| (\d+|other) \| (.+) \|$", documented, flags=re.MULTILINE)
    assert {code for code, _ in table} == {*map(str, EXIT_CODES), "other"}
    for code, meaning in table:
        if code != "other":
            assert meaning.startswith(EXIT_CODES[int(code)]), code
    valid, invalid = REPO / "tests/specs/valid/tiny.yaml", next((REPO / "tests/specs/invalid").glob("*.yaml"))
    assert run_cli("validate", str(valid), cwd=tmp_path).returncode == 0
    assert run_cli("validate", str(invalid), cwd=tmp_path).returncode == 1  # a spec with errors
    (tmp_path / "results").mkdir()
    for argv in (["validate", "--bogus", str(valid)],  # an unknown option
                 ["results", "nothing-here"], ["status", "nothing-here"], ["run", "nothing-here"],  # names nothing
                 ["run", str(valid), "network.widht=3"],  # no such field
                 ["results", "tiny", "--csv", "--format", "latex"]):  # contradicting options (names first)
        done = run_cli(*argv, cwd=tmp_path)
        assert done.returncode == 2 and "Traceback" not in done.stderr, (argv, done.returncode, done.stderr)
    # a field path without '=' is no experiment name: the message says how to set it
    assert "to set the field network.width, write network.width=VALUE" in \
        run_cli("run", str(valid), "network.width", cwd=tmp_path).stderr
    # an empty results folder is named where it is, from wherever the command runs
    for command in ("status", "list"):
        assert f"no experiments in {(tmp_path / 'results').resolve()}/ yet" in run_cli(command, cwd=tmp_path).stdout
