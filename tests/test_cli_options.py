"""No option is silently ignored: the options of `results`, `compare`, `export` and `run` either
combine as their help says or are refused with a message (exit 2), through the real CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from conftest import REPO, run_cli, write_spec

SPEC = (REPO / "tests/specs/valid/tiny.yaml").read_text().replace(
    "attack.eps_per_coord: [0.01, 0.02, 0.05]", "attack.eps_per_coord: [0.01, 0.05]")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny (2 eps x 2 seeds) and a one-seed copy, run."""
    folder = tmp_path_factory.mktemp("options")
    tiny = write_spec(folder, "tiny", SPEC)
    single = write_spec(folder, "single", SPEC.replace("name: tiny", "name: single").replace("seeds: [0, 1]", "seed: 0")
                        .replace(", series: seed", ""))
    ran = run_cli("run", str(tiny), str(single), "--cores", "2", cwd=folder)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return folder


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_results_over_seeds_as_csv_gives_one_row_per_point(workdir: Path) -> None:
    result = run_cli("results", "tiny", "--over-seeds", "--csv", cwd=workdir)
    assert result.returncode == 0, result.stderr
    points = csv_rows(result.stdout)
    assert len(points) == 2  # two eps, each over seeds 0 and 1 (it printed one row per run before)
    every = csv_rows(run_cli("results", "tiny", "--csv", cwd=workdir).stdout)
    for point in points:
        members = [float(r["g_clean_acc"]) for r in every if r["attack.eps_per_coord"] == point["attack.eps_per_coord"]]
        assert point["seeds"] == "2"
        assert float(point["g_clean_acc_mean"]) == pytest.approx(sum(members) / 2)
        assert float(point["g_clean_acc_min"]) == min(members) and float(point["g_clean_acc_max"]) == max(members)


def test_results_metrics_choose_the_csv_columns(workdir: Path) -> None:
    rows = csv_rows(run_cli("results", "tiny", "-m", "g_clean_acc", "--csv", cwd=workdir).stdout)
    assert len(rows) == 4 and "g_clean_acc" in rows[0] and "f_train_acc" not in rows[0] and "seed" in rows[0]
    points = csv_rows(run_cli("results", "tiny", "-m", "agreement", "--over-seeds", "--csv", cwd=workdir).stdout)
    assert [c for c in points[0] if c.startswith(("agreement", "g_clean"))] == \
        ["agreement_mean", "agreement_std", "agreement_median", "agreement_min", "agreement_max"]
    table = run_cli("results", "tiny", "-m", "agreement", "--over-seeds", cwd=workdir)
    assert "2 points, mean (min-max) over seeds" in table.stdout and "g_clean_acc" not in table.stdout


def test_results_refuses_what_it_cannot_do(workdir: Path) -> None:
    one_seed = run_cli("results", "single", "--over-seeds", cwd=workdir)
    assert one_seed.returncode == 2 and "single varies no seed" in one_seed.stderr
    unknown = run_cli("results", "tiny", "-m", "g_clean_ac", "--csv", cwd=workdir)
    assert unknown.returncode == 2 and "did you mean 'g_clean_acc'" in unknown.stderr


def test_compare_shows_the_chosen_metrics_and_refuses_unknown_ones(workdir: Path) -> None:
    chosen = run_cli("compare", "tiny", "tiny", "-m", "agreement", cwd=workdir)
    assert chosen.returncode == 0 and "agreement A" in chosen.stdout and "g_clean_acc A" not in chosen.stdout
    unknown = run_cli("compare", "tiny", "tiny", "-m", "agreemnt", cwd=workdir)
    assert unknown.returncode == 2 and "did you mean 'agreement'" in unknown.stderr


def test_export_writes_where_uri_says(workdir: Path) -> None:
    target = workdir / "elsewhere" / "tb"
    exported = run_cli("export", "tiny", "--to", "tensorboard", "--uri", str(target), cwd=workdir)
    assert exported.returncode == 0, exported.stderr
    assert target.is_dir() and any(target.rglob("events.out.tfevents.*"))
    assert not (workdir / "tensorboard").exists()


def test_run_refuses_a_name_with_nothing_to_derive(workdir: Path) -> None:
    alone = run_cli("run", "tiny", "--name", "renamed", cwd=workdir)
    assert alone.returncode == 2 and "--name names a derived experiment" in alone.stderr
    assert not (workdir / "results" / "renamed").exists()
    two = run_cli("run", "tiny", "single", "training.lr=0.1", "--name", "both", cwd=workdir)
    assert two.returncode == 2 and "give exactly one spec" in two.stderr


def test_reuse_is_visible_per_stage_before_and_after_a_run(workdir: Path) -> None:
    """Changing train_g.steps recomputes only train_g and evaluate: -n and the end of the run say so."""
    spec = workdir / "tiny.yaml"
    changed = write_spec(workdir, "steps", spec.read_text().replace("name: tiny", "name: steps")
                         .replace("train_g: {steps: 40}", "train_g: {steps: 25}"))
    planned = run_cli("run", str(changed), "-n", cwd=workdir)
    assert planned.returncode == 0, planned.stderr
    assert ("units per stage: train_f 0 to compute, 2 reused; attack 0 to compute, 4 reused; "
            "train_g 4 to compute, 0 reused; evaluate 4 to compute, 0 reused") in planned.stdout
    ran = run_cli("run", str(changed), "--cores", "2", cwd=workdir)
    assert ran.returncode == 0, ran.stderr
    assert ("units per stage: train_f 0 computed, 2 reused; attack 0 computed, 4 reused; "
            "train_g 4 computed, 0 reused; evaluate 4 computed, 0 reused") in ran.stdout


def markdown_rows(text: str) -> list[dict[str, str]]:
    lines = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.strip().splitlines()]
    return [dict(zip(lines[0], line)) for line in lines[2:]]


def latex_rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\\begin{tabular}") and "\\toprule" in text and "\\bottomrule" in text
    lines = [line for line in text.splitlines() if line.rstrip().endswith("\\\\") and "multicolumn" not in line]
    cells = [[c.strip().replace("\\_", "_") for c in line.rstrip().removesuffix("\\\\").split("&")] for line in lines]
    return [dict(zip(cells[0], line)) for line in cells[1:]]


def test_tables_for_papers_parse_back_to_the_results(workdir: Path) -> None:
    every = csv_rows(run_cli("results", "tiny", "--format", "csv", cwd=workdir).stdout)
    for fmt, parse in (("markdown", markdown_rows), ("latex", latex_rows)):
        result = run_cli("results", "tiny", "--format", fmt, "-m", "g_clean_acc", cwd=workdir)
        assert result.returncode == 0, result.stderr
        rows = parse(result.stdout)
        assert [r["run"] for r in rows] == [r["run"] for r in every]
        assert [float(r["g_clean_acc"]) for r in rows] == [float(f"{float(r['g_clean_acc']):.4g}") for r in every]
    points = csv_rows(run_cli("results", "tiny", "--over-seeds", "--csv", cwd=workdir).stdout)
    for stat, written in (("mean", "{mean:.3f} ± {std:.3f}"), ("median", "{median:.3f} [{min:.3f}, {max:.3f}]")):
        table = latex_rows(run_cli("results", "tiny", "--over-seeds", "--format", "latex", "--stat", stat,
                                   "-m", "agreement", cwd=workdir).stdout)
        assert [r["agreement"] for r in table] == [written.format(**{k: float(p[f"agreement_{k}"]) for k in (
            "mean", "std", "median", "min", "max")}) for p in points]
    refused = run_cli("results", "tiny", "--stat", "median", cwd=workdir)
    assert refused.returncode == 2 and "--stat chooses how --over-seeds writes a point" in refused.stderr


def test_a_table_over_seeds_gives_the_sample_std_and_says_so_with_n(workdir: Path) -> None:
    """The sample standard deviation (n - 1), as a paper's reader reads '±', named with n under the
    table; metric columns right-aligned in LaTeX."""
    from statistics import stdev

    runs = csv_rows(run_cli("results", "tiny", "--csv", cwd=workdir).stdout)
    points = csv_rows(run_cli("results", "tiny", "--over-seeds", "--csv", cwd=workdir).stdout)
    for point in points:
        values = [float(r["agreement"]) for r in runs if all(r[k] == point[k] for k in point if k in r and k != "seed")]
        assert len(values) == int(point["seeds"]) > 1
        assert float(point["agreement_std"]) == pytest.approx(stdev(values))
    n = points[0]["seeds"]
    latex = run_cli("results", "tiny", "--over-seeds", "--format", "latex", "-m", "agreement", cwd=workdir).stdout
    assert f"mean ± s.d. (sample standard deviation, n − 1) over n = {n} seeds" in latex
    assert "\\multicolumn" in latex and latex.index("multicolumn") > latex.index("bottomrule")
    assert latex.splitlines()[0].endswith("rr}")  # seeds and agreement right-aligned
    markdown = run_cli("results", "tiny", "--over-seeds", "--format", "markdown", "--stat", "median", cwd=workdir)
    assert markdown.stdout.rstrip().endswith(f"median [min, max] over n = {n} seeds")


def test_a_narrow_terminal_folds_headers_instead_of_cutting_them(workdir: Path) -> None:
    """In an 80-column terminal every header and run id is there in full (folded over lines)."""
    from rich.console import Console

    from pl_dsl.cli import render
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.results import read_table
    from pl_dsl.stages import REGISTRY

    layout = Layout(workdir / "results")
    console = Console(width=80, force_terminal=True, color_system=None, record=True)
    rows = read_table(layout.table("tiny"))
    render.results_table(console, "tiny", rows, layout.table("tiny"), layout, [], False, REGISTRY)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    lines = text.splitlines()
    header = [line.split("┃")[1:-1] for line in lines if line.startswith("┃")]
    columns = ["".join(part[i].strip() for part in header) for i in range(len(header[0]))]
    assert {"run", "attack.eps_per_coord", "f_train_acc", "g_clean_acc", "attack_success"} <= set(columns), columns
    first_column = "".join(line.split("│")[1].strip() for line in lines if line.startswith("│"))
    assert all(row["run"] in first_column for row in rows)
