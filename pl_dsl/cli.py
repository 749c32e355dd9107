"""The `pl-dsl` command: validate specs, list the runs they expand to, show results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pl_dsl.spec.check import check_file


def _console(err: bool = False) -> Console:
    # soft_wrap keeps each message on one line, so `file:line:col` stays greppable; tables
    # piped to a file get a generous width instead of rich's 80-column guess.
    console = Console(stderr=err, soft_wrap=True, highlight=False)
    if not console.is_terminal:
        console.width = 200
    return console


@click.group()
@click.version_option(package_name="pl-dsl")
def main() -> None:
    """pl-dsl: declarative perturbation-learning experiments (run them with `snakemake --cores N`)."""


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check spec FILES: every error as file:line:col: field: message (exit 1), else one line per file."""
    out, err = _console(), _console(err=True)
    failed = False
    for file in files:
        experiment, errors = check_file(file)
        for error in errors:
            err.print(f"[red]{error}[/red]" if err.is_terminal else str(error), markup=err.is_terminal)
        if experiment is not None:
            for warning in experiment.warnings:
                err.print(f"[yellow]{warning}[/yellow]" if err.is_terminal else str(warning), markup=err.is_terminal)
            count = len(experiment.runs)
            out.print(f"{file}: valid, {count} run{'s' if count != 1 else ''}", markup=False)
        failed = failed or bool(errors)
    sys.exit(1 if failed else 0)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the runs with their full specs as JSON.")
def runs(file: str, as_json: bool) -> None:
    """List the runs a spec FILE expands to: run ids and the values varied in each."""
    experiment, errors = check_file(file)
    if experiment is None:
        for error in errors:
            _console(err=True).print(str(error), markup=False)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps([{"id": r.id, "varied": r.varied, "spec": r.spec} for r in experiment.runs], indent=1))
        return
    table = Table(title=f"{experiment.name}: {len(experiment.runs)} runs")
    table.add_column("run")
    for axis in experiment.axes:
        table.add_column(axis)
    for run in experiment.runs:
        table.add_row(run.id, *[str(run.varied[a]) for a in experiment.axes])
    _console().print(table)


@main.command()
@click.argument("experiment")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root the workflow wrote to.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the whole table as CSV.")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metric columns to show (default: the main ones).")
def results(experiment: str, results_root: str, as_csv: bool, metrics: tuple[str, ...]) -> None:
    """Print the results table of EXPERIMENT (its name, or its spec file)."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.results import as_text, read_table
    from pl_dsl.stages import REGISTRY

    ALL_METRICS = REGISTRY.metrics()
    name = experiment
    if experiment.endswith((".yaml", ".yml")):
        checked, errors = check_file(experiment)
        if checked is None:
            for error in errors:
                _console(err=True).print(str(error), markup=False)
            sys.exit(1)
        name = checked.name
    table_path = Layout(Path(results_root)).table(name)
    if not table_path.exists():
        _console(err=True).print(f"no results for '{name}' at {table_path}: run `snakemake --cores N "
                                 f"--config experiments={name}` first", markup=False)
        sys.exit(1)
    rows = read_table(table_path)
    if as_csv:
        click.echo(as_text(rows), nl=False)
        return
    unknown = [m for m in metrics if m not in ALL_METRICS]
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(ALL_METRICS)}",
                                 param_hint="--metric")
    absent = [m for m in metrics if rows and m not in rows[0]]
    if absent:
        raise click.BadParameter(f"{', '.join(absent)} not in this table (theory metrics need `theory: "
                                 "{enabled: true}` in the spec)", param_hint="--metric")
    shown = list(metrics) or ["f_train_acc", "g_clean_acc", "g_test_acc", "agreement", "attack_success"]
    axes = [c for c in rows[0] if c not in ALL_METRICS and c not in ("run", "device")] if rows else []
    table = Table(title=f"{name}: {len(rows)} runs ({table_path})")
    for column in ["run", *axes, *shown]:
        table.add_column(column, justify="right" if column in ALL_METRICS else "left")
    for row in rows:
        table.add_row(row["run"], *[row[a] for a in axes], *[f"{float(row[m]):.4f}" if row[m] else "-" for m in shown])
    _console().print(table)
