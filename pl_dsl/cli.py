"""The `pl-dsl` command: validate specs, list the runs they expand to, show results."""

from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from pl_dsl.spec.check import Experiment, SpecError, check_file


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
            experiment.warnings.extend(_cuda_warnings(file, experiment))
            for warning in experiment.warnings:
                err.print(f"[yellow]{warning}[/yellow]" if err.is_terminal else str(warning), markup=err.is_terminal)
            count = len(experiment.runs)
            out.print(f"{file}: valid, {count} run{'s' if count != 1 else ''}", markup=False)
        failed = failed or bool(errors)
    sys.exit(1 if failed else 0)


def _cuda_warnings(file: str, experiment: Experiment) -> list[SpecError]:
    """A warning when runs ask for `device: cuda` and this machine has none (the jobs would fail
    here; a GPU node of a cluster may have one). torch is imported only for such specs."""
    if not any(run.config.device == "cuda" for run in experiment.runs):
        return []
    import torch

    if torch.cuda.is_available():
        return []
    lines = Path(file).read_text(encoding="utf-8").splitlines()
    line = next((i + 1 for i, text in enumerate(lines) if "device" in text and "cuda" in text), 1)
    return [SpecError(file, line, 1, "device", "runs ask for device: cuda, but PyTorch sees no CUDA device here; "
                      "their jobs fail on this machine (run them on a GPU node, or use device: auto)", level="warning")]


def _summary(files: list[Path]) -> None:
    """Per spec: runs, distinct units per stage and the estimated compute from the cost model."""
    from pl_dsl.engine.plan import batch_seconds, build_plan
    from pl_dsl.stages import REGISTRY

    table = Table(title="what the specs launch (compute estimated from the stage cost model, one CPU core)")
    for column in ["spec", "runs", *REGISTRY.names, "est. CPU core-hours"]:
        table.add_column(column, justify="left" if column == "spec" else "right")
    failed = False
    for file in files:
        experiment, errors = check_file(file)
        if experiment is None:
            failed = True
            for error in errors:
                _console(err=True).print(str(error), markup=False)
            continue
        plan = build_plan([experiment], REGISTRY)
        units = plan.experiments[experiment.name].units
        seconds = sum(batch_seconds(members) for members in units.values())  # step prefixes count once
        table.add_row(str(file), str(len(experiment.runs)), *[str(len(units[s])) for s in REGISTRY.names],
                      f"{seconds / 3600:.2f}")
    _console().print(table)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the runs with their full specs as JSON.")
@click.option("--summary", is_flag=True, help="Only counts: runs, units per stage, estimated compute (implied for a folder).")
def runs(path: str, as_json: bool, summary: bool) -> None:
    """List the runs a spec expands to (run ids, the values varied in each); for a folder of specs, or
    with --summary, what each spec launches: runs, distinct units per stage, estimated compute."""
    if Path(path).is_dir() or summary:
        files = sorted(Path(path).rglob("*.yaml")) if Path(path).is_dir() else [Path(path)]
        _summary(files)
        return
    experiment, errors = check_file(path)
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
@click.option("--over-seeds", is_flag=True, help="One row per point: mean, min and max of each metric over the seeds.")
def results(experiment: str, results_root: str, as_csv: bool, metrics: tuple[str, ...], over_seeds: bool) -> None:
    """Print the results table of EXPERIMENT (its name, or its spec file), then its claims."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.results import STATUS_COLUMNS, as_text, read_table
    from pl_dsl.stages import REGISTRY

    known = REGISTRY.metrics()
    name = experiment
    if experiment.endswith((".yaml", ".yml")):
        checked, errors = check_file(experiment)
        if checked is None:
            for error in errors:
                _console(err=True).print(str(error), markup=False)
            sys.exit(1)
        name = checked.name
    layout = Layout(Path(results_root))
    table_path = layout.table(name)
    if not table_path.exists():
        _console(err=True).print(f"no results for '{name}' at {table_path}: run `snakemake --cores N "
                                 f"--config experiments={name}` first", markup=False)
        sys.exit(1)
    try:
        rows = read_table(table_path)
        if rows and not {"run", "status"} <= set(rows[0]):
            raise ValueError("columns are missing")
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        _console(err=True).print(f"{table_path} is damaged ({exc}); rewrite it with `snakemake --cores N --forcerun "
                                 f"collect_results --config experiments={name}`", markup=False)
        sys.exit(1)
    if as_csv:
        click.echo(as_text(rows), nl=False)
        return
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(known)}",
                                 param_hint="--metric")
    absent = [m for m in metrics if rows and m not in rows[0]]
    if absent:
        raise click.BadParameter(f"{', '.join(absent)} not in this table (theory metrics need `theory: "
                                 "{enabled: true}` in the spec)", param_hint="--metric")
    shown = list(metrics) or ["f_test_acc", "g_clean_acc", "agreement", "attack_success"]
    axes = [c for c in rows[0] if c not in known and c not in ("run", "device", "panels", *STATUS_COLUMNS)] if rows else []
    console = _console()
    if over_seeds and "seed" in axes:
        _print_over_seeds(console, name, rows, [a for a in axes if a != "seed"], shown)
    else:
        table = Table(title=f"{name}: {len(rows)} runs ({table_path})")
        for column in ["run", *axes, *shown]:
            table.add_column(column, justify="right" if column in known else "left")
        for row in rows:
            table.add_row(row["run"], *[row[a] for a in axes], *[f"{float(row[m]):.4f}" if row[m] else "-" for m in shown])
        console.print(table)
    diverged = [row for row in rows if row.get("status") == "diverged"]
    if diverged:
        console.print(f"{len(diverged)} of {len(rows)} runs diverged (no metrics):", style="yellow", markup=False)
        for row in diverged:
            values = ", ".join(f"{a}={row[a]}" for a in axes)
            console.print(f"  {row['run']} ({values}): {row['note']}", style="yellow", markup=False)
    if layout.claims(name).exists():
        _print_claims(console, name, read_table(layout.claims(name)))


def _print_over_seeds(console: Console, name: str, rows: list[dict[str, str]], keys: list[str], shown: list[str]) -> None:
    """One row per point (the other swept values): each metric as mean [min, max] over the seeds."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    table = Table(title=f"{name}: {len(groups)} points, mean (min-max) over seeds")
    for column in [*keys, "seeds", *shown]:
        table.add_column(column, justify="left" if column in keys else "right")
    for point, members in groups.items():
        cells = []
        for metric in shown:
            values = [float(m[metric]) for m in members if m[metric]]
            cells.append(f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})" if values else "-")
        table.add_row(*point, str(len(members)), *cells)
    console.print(table)


def _print_claims(console: Console, name: str, claims: list[dict[str, str]]) -> None:
    """The claims table: green rows passed, red rows failed."""
    passed = sum(row["passed"] == "true" for row in claims)
    table = Table(title=f"{name}: {passed} of {len(claims)} claims pass")
    for column in ("claim", "passed", "value", "threshold", "detail"):
        table.add_column(column, overflow="fold")
    for row in claims:
        table.add_row(*[row[c] for c in ("claim", "passed", "value", "threshold", "detail")],
                      style="green" if row["passed"] == "true" else "red")
    console.print(table)


@main.command()
@click.argument("experiments", nargs=-1)
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root the workflow writes to.")
@click.option("--stage-modules", default="", help="Modules declaring extra stages, as given to snakemake.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--verify", is_flag=True, help="Also check every stored file against its recorded sha256 (exit 1 if any "
                                             "is damaged; snakemake --config verify=full recomputes it).")
def status(experiments: tuple[str, ...], results_root: str, stage_modules: str, as_json: bool, verify: bool) -> None:
    """How far EXPERIMENTS are (names, spec files or folders, as for `--config experiments=`; default
    every experiments/*.yaml): units done, running, failed and pending per stage, runs complete,
    the estimated compute left, and the running jobs' progress. Reads only; safe while snakemake runs."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.plan import build_plan
    from pl_dsl.engine.progress import duration
    from pl_dsl.engine.status import collect_status
    from pl_dsl.engine.workflow import check_or_exit, find_spec_files, load_registry

    registry = load_registry({"stage_modules": stage_modules})
    checked = check_or_exit(find_spec_files(list(experiments), Path.cwd()), registry, skip_missing_data=True)
    state = collect_status(build_plan(checked, registry), Layout(Path(results_root)), verify=verify)
    damaged = sorted({line for experiment in state.experiments for line in experiment.damage})
    if as_json:
        click.echo(json.dumps(state.to_json(), indent=1))
        sys.exit(1 if damaged else 0)
    console = _console()
    for experiment in state.experiments:
        table = Table(title=f"{experiment.name}: {experiment.runs_complete} of {experiment.runs} runs complete; "
                            f"about {duration(experiment.remaining_seconds)} of CPU-core compute left")
        counts = ("units", "done", "running", "failed", "pending", *(("damaged",) if verify else ()))
        for column in ("stage", *counts, "compute left"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for stage in experiment.stages:
            table.add_row(stage.stage, *[str(getattr(stage, count)) for count in counts],
                          duration(stage.remaining_seconds) if stage.remaining_seconds else "-",
                          style="red" if stage.failed else ("green" if stage.done == stage.units else None))
        console.print(table)
        for failure in experiment.failures:
            console.print(f"failed: {failure}", style="red", markup=False)
    if state.jobs:
        table = Table(title="running jobs")
        for column in ("stage", "batch", "unit", "step", "loss", "ETA", "host", "last report"):
            table.add_column(column)
        now = time.time()
        for job in state.jobs:
            step = f"{job['step']}/{job['steps']}" if job.get("step") else "-"
            loss = f"{job['loss']:.4g}" if job.get("loss") is not None else "-"
            eta = duration(job["eta_seconds"]) if job.get("eta_seconds") is not None else "-"
            age = f"{now - job['updated']:.0f}s ago" + (" (stale: killed or stuck?)" if job["stale"] else "")
            table.add_row(job["stage"], job["batch"], f"{job['done'] + 1}/{job['units']}", step, loss, eta,
                          str(job.get("host", "?")), age, style="red" if job["stale"] else None)
        console.print(table)
    if verify:
        for line in damaged:
            console.print(f"damaged: {line}", style="red", markup=False)
        console.print(f"verified every stored file: {len(damaged)} damaged"
                      + ("; `snakemake --config verify=full ...` recomputes them and what depends on them"
                         if damaged else ""),
                      markup=False)
        sys.exit(1 if damaged else 0)


@main.command()
@click.argument("experiments", nargs=-1)
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root the workflow writes to.")
@click.option("--stage-modules", default="", help="Modules declaring extra stages, as given to snakemake.")
@click.option("--yes", is_flag=True, help="Delete (without it, only list what would be deleted).")
def gc(experiments: tuple[str, ...], results_root: str, stage_modules: str, yes: bool) -> None:
    """Remove stored units, manifests and plans that no selected spec references (EXPERIMENTS as for
    `status`; default every spec under experiments/, subfolders included). Lists them and the bytes
    they take; deletes only with --yes. Do not run it while snakemake runs other specs in this folder."""
    from pl_dsl.engine.gc import garbage, remove
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.plan import build_plan
    from pl_dsl.engine.workflow import find_spec_files, load_registry

    registry = load_registry({"stage_modules": stage_modules})
    files = find_spec_files(list(experiments), Path.cwd()) if experiments else sorted(Path("experiments").rglob("*.yaml"))
    checked = []
    for file in files:  # specs whose data are missing here still keep their results
        experiment, errors = check_file(file, registry)
        if experiment is None:
            for error in errors:
                _console(err=True).print(str(error), markup=False)
            _console(err=True).print(f"gc: {file} is invalid; nothing is removed while a spec cannot be read",
                                     markup=False)
            sys.exit(1)
        checked.append(experiment)
    found = garbage(build_plan(checked, registry), Layout(Path(results_root)))
    total = sum(size for _, size in found)
    console = _console()
    for path, size in found:
        console.print(f"{'removed' if yes else 'would remove'} {path} ({size / 2**20:.2f} MB)", markup=False)
    if yes:
        remove([path for path, _ in found])
    console.print(f"{len(found)} unreferenced item(s), {total / 2**20:.1f} MB "
                  + ("freed" if yes else "would be freed; run again with --yes to delete them"), markup=False)


@main.command()
@click.option("--require-cuda", is_flag=True, help="Exit 1 unless PyTorch sees a CUDA device (for GPU nodes).")
def doctor(require_cuda: bool) -> None:
    """What this machine offers pl-dsl: Python, the torch build and the devices it sees (with the CUDA
    version), threads, Snakemake and the SLURM plugin, and the real data files found."""
    from pl_dsl.doctor import diagnose

    report = diagnose()
    console = _console()
    table = Table(title="pl-dsl doctor", show_header=False)
    table.add_column("what")
    table.add_column("found", overflow="fold")
    for what, found in report.rows:
        table.add_row(what, found)
    console.print(table)
    if require_cuda and not report.cuda_devices:
        _console(err=True).print(f"no CUDA device: {report.cuda_problem}", markup=False)
        sys.exit(1)
