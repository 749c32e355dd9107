"""Commands that read results: results (tables for the terminal and for papers), list, compare."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pl_dsl.cli import render
from pl_dsl.cli.common import (
    STAGE_MODULES,
    CommandError,
    cell,
    console,
    named,
    no_experiments,
    registry,
    results_option,
)
from pl_dsl.suggest import did_you_mean
from pl_dsl.suggest import known as known_names

if TYPE_CHECKING:
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.catalog import Comparison


def stored_table(item: str, layout: Layout, hint: str = "") -> tuple[str, Path, list[dict[str, str]]]:
    """The experiment ITEM names, its results table's path and rows; exit 1 when it has none or it
    is damaged."""
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.report.results import read_table

    name = named(lambda: experiment_name(item, layout, Path.cwd()))
    path = layout.table(name)
    if not path.exists():
        present = [found.parent.name for found in layout.root.glob("*/results.csv")]
        raise CommandError(f"no results for '{name}' at {path}{did_you_mean(name, present)}{hint}")
    try:
        rows = read_table(path)
        if rows and not {"run", "status"} <= set(rows[0]):
            raise ValueError("columns are missing")
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"{path} is damaged ({exc}); rewrite it with `snakemake --cores N --forcerun "
                           f"collect_results --config experiments={name}`") from None
    return name, path, rows


def known_metrics(metrics: tuple[str, ...], known: dict[str, str]) -> None:
    """Refuse metric names no stage declares, with the closest and the known ones."""
    unknown = [m for m in metrics if m not in known]
    if unknown:
        hints = "".join(did_you_mean(m, known) for m in unknown)
        raise CommandError(f"unknown metric(s) {', '.join(unknown)}{hints}; known: {known_names(known)}",
                           param="--metric")


def paper_table(rows: list[dict[str, str]], axes: list[str], shown: list[str], fmt: str, over_seeds: bool,
                stat: str, all_columns: bool) -> str:
    """The results as CSV (full precision), Markdown or LaTeX (4 significant digits), one row per
    run or, over the seeds, per point."""
    from pl_dsl.report.results import formatted, over_seeds_rows, paper_rows, statistic_note

    keys = [a for a in axes if a != "seed"]
    note = ""
    if over_seeds:
        points = over_seeds_rows(rows, keys, shown)
        table_rows = points if fmt == "csv" else paper_rows(points, keys, shown, stat)
        note = statistic_note(points, stat)
    elif fmt == "csv" and all_columns:
        table_rows = rows
    else:
        table_rows = [{c: row[c] for c in ("run", *axes, *shown)} for row in rows]
    if fmt != "csv":
        table_rows = [{k: cell(str(v)) for k, v in row.items()} for row in table_rows]
    return formatted(table_rows, fmt, numeric={*shown, "seeds"}, note=note)


@click.command()
@click.argument("experiment")
@results_option("Results root the workflow wrote to.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "markdown", "latex"]), default="table",
              show_default=True,
              help="table: for the terminal, with the claims; csv: full precision (every column; with -m the run, "
                   "swept columns and those metrics); markdown (GitHub) or latex (booktabs rules): for a paper.")
@click.option("--csv", "as_csv", is_flag=True, help="The same as --format csv.")
@click.option("--stat", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
              help="With --over-seeds in markdown or latex: mean ± sample s.d. (n - 1), or median [min, max], over "
                   "the seeds; a line under the table says which, with n.")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metric columns to show (default: the main ones).")
@click.option("--over-seeds", is_flag=True,
              help="One row per point (the other swept values): mean, min and max of each metric over the seeds.")
@STAGE_MODULES
def results(experiment: str, results_root: str, fmt: str, as_csv: bool, stat: str, metrics: tuple[str, ...],
            over_seeds: bool, stage_modules: str | None) -> None:
    """Print the results table of EXPERIMENT (its name, its spec file, or a spec under
    experiments/), then its claims. --csv, -m and --over-seeds combine."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.results import table_columns

    stages = registry(stage_modules)
    known = stages.metrics()
    layout = Layout(Path(results_root))
    name, path, rows = stored_table(experiment, layout, f": run `pl-dsl run {experiment}` first")
    known_metrics(metrics, known)
    absent = [m for m in metrics if rows and m not in rows[0]]
    if absent:
        raise CommandError(f"{', '.join(absent)} not in this table (theory metrics need `theory: {{enabled: true}}` "
                           "in the spec)", param="--metric")
    axes, shown = table_columns(rows, known, list(metrics))
    if over_seeds and "seed" not in axes:
        raise CommandError(f"{name} varies no seed (each point has one run): drop --over-seeds", param="--over-seeds")
    if as_csv and fmt not in ("table", "csv"):
        raise CommandError(f"--csv and --format {fmt} ask for two formats: give one", param="--csv")
    fmt = "csv" if as_csv else fmt
    if stat == "median" and not (over_seeds and fmt in ("markdown", "latex")):
        raise CommandError("--stat chooses how --over-seeds writes a point in --format markdown or latex",
                           param="--stat")
    if fmt != "table":
        click.echo(paper_table(rows, axes, shown, fmt, over_seeds, stat, not metrics), nl=False)
        return
    render.results_table(console(), name, rows, path, layout, list(metrics), over_seeds, stages)


@click.command(name="list")
@results_option()
def list_experiments(results_root: str) -> None:
    """Every experiment in the results root: its spec, runs done of its runs, claims passed and
    when it last changed (newest first)."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.catalog import experiments

    entries = experiments(Layout(Path(results_root)))
    if not entries:
        console().print(no_experiments(Path(results_root)), markup=False)
        return
    console().print(render.catalog(entries, results_root))


@dataclass
class Compared:
    """Two experiments' results matched point by point, with what else their specs differ in."""

    first: str
    second: str
    metrics: list[str]
    result: Comparison
    spec_differences: list[str]


def compare_experiments(first: str, second: str, metrics: list[str], layout: Layout,
                        known: dict[str, str]) -> Compared:
    """Match the runs of two experiments on every field either varies; unmatched points apart."""
    from pl_dsl.report.catalog import compare, spec_differences

    first, _, _ = stored_table(first, layout)
    second, _, _ = stored_table(second, layout)
    known_metrics(tuple(metrics), known)
    shown = metrics or ["f_train_acc", "g_clean_acc", "agreement"]
    result = compare(layout.table(first), layout.table(second), shown, set(known))
    return Compared(first, second, shown, result, spec_differences(layout, first, second, result.fields))


@click.command()
@click.argument("first")
@click.argument("second")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metrics to compare (default: the main ones).")
@results_option()
def compare(first: str, second: str, metrics: tuple[str, ...], results_root: str) -> None:
    """Two experiments side by side on the axes they share: each metric in FIRST and SECOND and
    their difference, points that differ marked (* and colour)."""
    from pl_dsl.engine.paths import Layout

    render.comparison(console(), compare_experiments(first, second, list(metrics), Layout(Path(results_root)),
                                                     registry(None).metrics()))
