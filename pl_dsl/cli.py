"""The `pl-dsl` command: validate specs, list the runs they expand to, show results."""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from pl_dsl.spec.check import check_file
from pl_dsl.spec.expand import Experiment
from pl_dsl.spec.messages import SpecError

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry
from pl_dsl.suggest import did_you_mean
from pl_dsl.suggest import known as known_names

T = TypeVar("T")


def cell(text: str) -> str:
    """A table cell for people: numbers to 4 significant digits (the CSV keeps full precision)."""
    try:
        value = float(text)
    except ValueError:
        return text
    return text if value.is_integer() and "." not in text else f"{value:.4g}"


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


STAGE_MODULES = click.option("--stage-modules", default=None,
                             help="Modules declaring stages of your own (comma-separated), instead of those the "
                                  "project names in pl-dsl.toml or pyproject.toml [tool.pl-dsl].")


def _named(command: str, resolve: Callable[[], T]) -> T:
    """What a resolver of engine.names returns, or its message (where it looked) and exit 1."""
    from pl_dsl.engine.names import NotFound

    try:
        return resolve()
    except NotFound as exc:
        _console(err=True).print(f"pl-dsl {command}: {exc}", markup=False)
        sys.exit(1)


def _registry(stage_modules: str | None) -> Registry:
    """pl-dsl's stages plus the project's own (see pl_dsl.project), or those named here instead."""
    from pl_dsl.engine.registry import stage_modules as module_list
    from pl_dsl.project import ProjectError, project_registry

    try:
        return project_registry(tuple(module_list(stage_modules)) if stage_modules is not None else None)
    except ProjectError as exc:
        _console(err=True).print(f"pl-dsl: {exc}", markup=False)
        sys.exit(2)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@STAGE_MODULES
def validate(files: tuple[str, ...], stage_modules: str | None) -> None:
    """Check spec FILES: every error as file:line:col: field: message (exit 1), else one line per file."""
    registry = _registry(stage_modules)
    out, err = _console(), _console(err=True)
    failed = False
    names: dict[str, list[str]] = {}
    for file in files:
        experiment, errors = check_file(file, registry)
        if experiment is not None:
            names.setdefault(experiment.name, []).append(file)
        for error in errors:
            err.print(f"[red]{error}[/red]" if err.is_terminal else str(error), markup=err.is_terminal)
        if experiment is not None:
            experiment.warnings.extend(_cuda_warnings(file, experiment))
            for warning in experiment.warnings:
                err.print(f"[yellow]{warning}[/yellow]" if err.is_terminal else str(warning), markup=err.is_terminal)
            count = len(experiment.runs)
            out.print(f"{file}: valid, {count} run{'s' if count != 1 else ''}", markup=False)
        failed = failed or bool(errors)
    for name, clashing in names.items():
        if len(clashing) > 1:  # their results would land in the same folder
            err.print(f"experiment name '{name}' is used by several specs ({', '.join(clashing)}); names must be unique",
                      markup=False)
            failed = True
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


def _summary(files: list[Path], registry: Registry, device: str = "cpu") -> None:
    """Per spec: runs, distinct units per stage and the estimated compute from the cost model, on
    one CPU core or, with device cuda, on the calibrated GPU with nets stacked by shape."""
    from pl_dsl.engine.calibration import load
    from pl_dsl.engine.plan import batch_seconds, build_plan, calibrated_seconds

    calibration = load().get(device)
    if calibration:
        where = f"calibrated on {calibration.get('device_name', 'this CPU, one core')} ({calibration['measured']})"
    else:
        where = "the cost model's CPU core rate" + (": no CUDA calibration here (pl-dsl doctor --calibrate on a GPU "
                                                    "node)" if device == "cuda" else "")
    table = Table(title=f"what the specs launch (compute estimated from the stage cost model; {where})")
    for column in ["spec", "runs", *registry.names, f"est. {'GPU' if device == 'cuda' else 'CPU core'}-hours"]:
        table.add_column(column, justify="left" if column == "spec" else "right")
    failed = False
    for file in files:
        experiment, errors = check_file(file, registry)
        if experiment is None:
            failed = True
            for error in errors:
                _console(err=True).print(str(error), markup=False)
            continue
        plan = build_plan([experiment], registry, stack="on" if device == "cuda" else "auto")
        units = plan.experiments[experiment.name].units
        # step prefixes count once; at the calibrated rate where there is one (stacks at the stacked rate)
        seconds = sum((calibrated_seconds(members, device) if calibration else None) or batch_seconds(members)
                      for members in units.values())
        table.add_row(str(file), str(len(experiment.runs)), *[str(len(units[s])) for s in registry.names],
                      f"{seconds / 3600:.2f}")
    _console().print(table)
    if failed:
        sys.exit(1)


class _RunCommand(click.Command):
    """Keeps what follows `--` for Snakemake instead of reading it as arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["snakemake_args"], args = args[split + 1:], args[:split]
        return super().parse_args(ctx, args)


@main.command(cls=_RunCommand)
@click.argument("items", nargs=-1)
@click.option("-m", "--multirun", "multirun", multiple=True, metavar="FIELD=a,b,...",
              help="Sweep FIELD over these values too (an axis added to the spec's sweep; repeatable).")
@click.option("--name", help="Name of the derived experiment (default: <name>+<hash of the changes>).")
@click.option("--cores", type=int, help="Cores for local jobs (default: all of this machine's).")
@click.option("--profile", help="A Snakemake profile, e.g. profiles/slurm for a SLURM cluster.")
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be computed.")
@click.option("-v", "--verbose", is_flag=True, help="Show Snakemake's own output (always in the log file).")
@click.option("--force", is_flag=True, help="Replace results of another spec that has the same name.")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root.")
@click.pass_context
def run(ctx: click.Context, items: tuple[str, ...], multirun: tuple[str, ...], name: str | None, cores: int | None,
        profile: str | None, dry_run: bool, verbose: bool, force: bool, results_root: str) -> None:
    """Run experiments: ITEMS are specs (files, folders or names, as for `--config experiments=`;
    default every experiments/*.yaml) and FIELD=VALUE overrides (dotted paths, YAML values).
    Overrides and -m axes make a derived experiment with its own name and results folder. Shows
    one progress line (Snakemake's output goes to a log file), then each experiment's results
    and claims. Anything after `--` is passed to Snakemake."""
    from pl_dsl.engine.names import spec_files
    from pl_dsl.engine.paths import Layout
    from pl_dsl.launch import (
        INTERRUPTED,
        PlainProgress,
        Tracker,
        UsageError,
        derive,
        failure_lines,
        locked_out,
        parse_change,
        project_root,
        run_workflow,
        snakemake_command,
    )
    from pl_dsl.report.results import read_table

    err = _console(err=True)
    layout = Layout(Path(results_root))
    registry = _registry(None)
    specs = [item for item in items if "=" not in item]
    try:
        changes = ([parse_change(item, registry.schema) for item in items if "=" in item]
                   + [parse_change(argument, registry.schema, True) for argument in multirun])
    except UsageError as exc:
        err.print(f"pl-dsl run: {exc}", markup=False)
        sys.exit(2)
    try:
        project_root()  # the workflow that runs them
    except UsageError as exc:
        err.print(f"pl-dsl run: {exc}", markup=False)
        sys.exit(2)
    files = [file.resolve() for file in _named("run", lambda: spec_files(specs, layout, Path.cwd()))]
    if not files:
        err.print(f"pl-dsl run: no specs: name spec files, folders or experiment names (there is no "
                  f"{Path.cwd() / 'experiments'}/*.yaml to run by default)", markup=False)
        sys.exit(2)
    if name and len(files) != 1:
        err.print("pl-dsl run: --name names one derived experiment: give exactly one spec", markup=False)
        sys.exit(2)
    if name and not changes:
        err.print("pl-dsl run: --name names a derived experiment, and there is none without FIELD=VALUE or -m "
                  "(to rename an experiment, change its spec's name:)", markup=False)
        sys.exit(2)
    failed = False
    if changes:
        derived = []
        for file in files:
            try:
                target, errors = derive(file, changes, layout, registry, name)
            except UsageError as exc:
                err.print(f"pl-dsl run: {exc}", markup=False)
                sys.exit(2)
            for error in errors:
                err.print(str(error), markup=False)
            failed = failed or bool(errors)
            if not errors:
                derived.append(target)
        files = derived
    checked = []
    for file in files:  # the same check, and messages, as `pl-dsl validate`
        experiment, errors = check_file(file, registry)
        for error in [*errors, *(experiment.warnings if experiment is not None else [])]:
            err.print(str(error), markup=False)
        failed = failed or experiment is None
        if experiment is not None:
            checked.append(experiment)
    if failed:
        sys.exit(1)
    command = snakemake_command(files, cores, profile, dry_run, force, layout, ctx.meta.get("snakemake_args", []))
    log = layout.logs / "run" / f"{time.strftime('%Y%m%d-%H%M%S')}.log"
    out = _console()
    names = ", ".join(e.name for e in checked)
    tracker = Tracker.of(checked, layout, registry)
    if dry_run:
        code = subprocess.run(command).returncode
        out.print(f"units per stage: {tracker.reuse(planned=True)}", markup=False)
        sys.exit(code)
    out.print(f"running {names} (Snakemake's log: {log})", markup=False)
    if out.is_terminal:
        status = out.status("")
        with status:
            code = run_workflow(command, log, verbose, tracker, lambda line: status.update(line))
    else:  # a pipe or a log file: a plain line at most every 10 s
        code = run_workflow(command, log, verbose, tracker, PlainProgress(lambda line: out.print(line, markup=False)))
    out.print(tracker.line(), markup=False)
    out.print(f"units per stage: {tracker.reuse(planned=False)}", markup=False)
    if code == INTERRUPTED:
        finished, total = tracker.runs_done()
        err.print(f"pl-dsl run: interrupted; {finished} of {total} runs are complete and every unit computed so far "
                  f"is stored: `{shlex.join(['pl-dsl', *sys.argv[1:]])}` again computes only the rest", markup=False)
        sys.exit(code)
    if code != 0 and locked_out(log):
        again = shlex.join(["pl-dsl", *sys.argv[1:]])
        err.print(f"pl-dsl run: {names} is being computed by another run in {Path.cwd()} (pl-dsl run or snakemake), "
                  f"and two runs must not write the same results: wait for it to finish (`pl-dsl status` shows its "
                  f"progress), then run again; nothing was done. If no other run is alive (one was killed), "
                  f"`{again} -- --unlock` removes its stale lock.", markup=False)
        sys.exit(code)
    for experiment in checked:
        table = layout.table(experiment.name)
        if table.exists():
            _show_table(out, experiment.name, read_table(table), table, layout, [], False, registry, max_rows=40)
    if code != 0:
        if not verbose:
            for line in failure_lines(log):
                err.print(line, markup=False)
        err.print(f"pl-dsl run: Snakemake failed (exit {code}); its log: {log}", markup=False)
    sys.exit(code)


@main.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@STAGE_MODULES
def show(spec: str, stage_modules: str | None) -> None:
    """Print SPEC as it runs: its bases (`extends:`) merged in, as YAML, after checking it."""
    import yaml

    from pl_dsl.spec.compose import load_composed

    experiment, errors = check_file(spec, _registry(stage_modules))
    for error in errors:
        _console(err=True).print(str(error), markup=False)
    if experiment is None:
        sys.exit(1)
    data = load_composed(Path(spec).read_text(encoding="utf-8"), spec).data
    click.echo(f"# {spec}, resolved (bases merged in)\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                                                            width=120), nl=False)


@main.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write it to this file (default: print it).")
@STAGE_MODULES
def schema(output: str | None, stage_modules: str | None) -> None:
    """The experiment JSON Schema, assembled from the sections the registered stages declare
    (with the project's own stages). pl-dsl's own is pl_dsl/spec/experiment.schema.json:
    `pl-dsl schema -o pl_dsl/spec/experiment.schema.json` rewrites it after a stage changed."""
    from pl_dsl.spec.schema import schema_text

    text = schema_text(_registry(stage_modules).schema)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    _console().print(f"wrote {output}", markup=False)


@main.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the runs with their full specs as JSON.")
@click.option("--summary", is_flag=True, help="Only counts: runs, units per stage, estimated compute (implied for a folder).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Estimate the compute on this device kind, at the rate `pl-dsl doctor --calibrate` measured "
                   "(cuda: nets stacked by shape).")
@STAGE_MODULES
def runs(path: str, as_json: bool, summary: bool, device: str, stage_modules: str | None) -> None:
    """List the runs a spec expands to (run ids, the values varied in each); for a folder of specs, or
    with --summary, what each spec launches: runs, distinct units per stage, estimated compute."""
    registry = _registry(stage_modules)
    if Path(path).is_dir() or summary:
        files = sorted(Path(path).rglob("*.yaml")) if Path(path).is_dir() else [Path(path)]
        _summary(files, registry, device)
        return
    experiment, errors = check_file(path, registry)
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
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "markdown", "latex"]), default="table",
              show_default=True,
              help="table: for the terminal, with the claims; csv: full precision (every column; with -m the run, "
                   "swept columns and those metrics); markdown (GitHub) or latex (booktabs rules): for a paper.")
@click.option("--csv", "as_csv", is_flag=True, help="The same as --format csv.")
@click.option("--stat", type=click.Choice(["mean", "median"]), default="mean", show_default=True,
              help="With --over-seeds in markdown or latex: mean ± std, or median [min, max], over the seeds.")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metric columns to show (default: the main ones).")
@click.option("--over-seeds", is_flag=True,
              help="One row per point (the other swept values): mean, min and max of each metric over the seeds.")
@STAGE_MODULES
def results(experiment: str, results_root: str, fmt: str, as_csv: bool, stat: str, metrics: tuple[str, ...],
            over_seeds: bool, stage_modules: str | None) -> None:
    """Print the results table of EXPERIMENT (its name, its spec file, or a spec under
    experiments/), then its claims. --csv, -m and --over-seeds combine."""
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.results import formatted, over_seeds_rows, paper_rows, read_table, table_columns

    registry = _registry(stage_modules)
    known = registry.metrics()
    layout = Layout(Path(results_root))
    name = _named("results", lambda: experiment_name(experiment, layout, Path.cwd()))
    table_path = layout.table(name)
    if not table_path.exists():
        present = [path.parent.name for path in Path(results_root).glob("*/results.csv")]
        _console(err=True).print(f"no results for '{name}' at {table_path}{did_you_mean(name, present)}: run "
                                 f"`pl-dsl run {experiment}` first", markup=False)
        sys.exit(1)
    try:
        rows = read_table(table_path)
        if rows and not {"run", "status"} <= set(rows[0]):
            raise ValueError("columns are missing")
    except (OSError, ValueError, UnicodeDecodeError, csv.Error) as exc:
        _console(err=True).print(f"{table_path} is damaged ({exc}); rewrite it with `snakemake --cores N --forcerun "
                                 f"collect_results --config experiments={name}`", markup=False)
        sys.exit(1)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        hints = "".join(did_you_mean(m, known) for m in unknown)
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}{hints}; known: {known_names(known)}",
                                 param_hint="--metric")
    absent = [m for m in metrics if rows and m not in rows[0]]
    if absent:
        raise click.BadParameter(f"{', '.join(absent)} not in this table (theory metrics need `theory: "
                                 "{enabled: true}` in the spec)", param_hint="--metric")
    axes, shown = table_columns(rows, known, list(metrics))
    if over_seeds and "seed" not in axes:
        raise click.BadParameter(f"{name} varies no seed (each point has one run): drop --over-seeds",
                                 param_hint="--over-seeds")
    if as_csv and fmt not in ("table", "csv"):
        raise click.BadParameter(f"--csv and --format {fmt} ask for two formats: give one", param_hint="--csv")
    fmt = "csv" if as_csv else fmt
    if stat == "median" and not (over_seeds and fmt in ("markdown", "latex")):
        raise click.BadParameter("--stat chooses how --over-seeds writes a point in --format markdown or latex",
                                 param_hint="--stat")
    if fmt != "table":
        keys = [a for a in axes if a != "seed"]
        if over_seeds:
            points = over_seeds_rows(rows, keys, shown)
            table_rows = points if fmt == "csv" else paper_rows(points, keys, shown, stat)
        elif fmt == "csv" and not metrics:
            table_rows = rows
        else:
            table_rows = [{c: row[c] for c in ("run", *axes, *shown)} for row in rows]
        if fmt != "csv":  # for people: numbers to 4 significant digits, as the terminal table
            table_rows = [{k: cell(str(v)) for k, v in row.items()} for row in table_rows]
        click.echo(formatted(table_rows, fmt), nl=False)
        return
    _show_table(_console(), name, rows, table_path, layout, list(metrics), over_seeds, registry)


def _show_table(console: Console, name: str, rows: list[dict[str, str]], table_path: Path, layout: Any,
                metrics: list[str], over_seeds: bool, registry: Registry, max_rows: int | None = None) -> None:
    """An experiment's results table (or one row per point over the seeds), its diverged runs and
    its claims. With max_rows, a longer table is left to `pl-dsl results`."""
    from pl_dsl.report.results import read_table, table_columns

    known = registry.metrics()
    axes, shown = table_columns(rows, known, metrics)
    if max_rows is not None and len(rows) > max_rows:
        console.print(f"{name}: {len(rows)} runs in {table_path} (`pl-dsl results {name}` shows them)", markup=False)
    elif over_seeds:
        _print_over_seeds(console, name, rows, [a for a in axes if a != "seed"], shown)
    else:
        table = Table(title=f"{name}: {len(rows)} runs ({table_path})")
        for column in ["run", *axes, *shown]:
            table.add_column(column, justify="right" if column in known else "left")
        for row in rows:
            table.add_row(row["run"], *[cell(row[a]) for a in axes], *[cell(row[m]) if row[m] else "-" for m in shown])
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
    """One row per point (the other swept values): each metric as mean (min-max) over the seeds."""
    from pl_dsl.report.results import over_seeds_rows

    points = over_seeds_rows(rows, keys, shown)
    table = Table(title=f"{name}: {len(points)} points, mean (min-max) over seeds")
    for column in [*keys, "seeds", *shown]:
        table.add_column(column, justify="left" if column in keys else "right")
    for point in points:
        cells = [f"{float(point[f'{m}_mean']):.4g} ({float(point[f'{m}_min']):.4g}-{float(point[f'{m}_max']):.4g})"
                 if point[f"{m}_mean"] != "" else "-" for m in shown]
        table.add_row(*[cell(str(point[k])) for k in keys], str(point["seeds"]), *cells)
    console.print(table)


def _print_claims(console: Console, name: str, claims: list[dict[str, str]]) -> None:
    """The claims table: green rows passed, red rows failed."""
    passed = sum(row["passed"] == "true" for row in claims)
    table = Table(title=f"{name}: {passed} of {len(claims)} claims pass")
    columns = [c for c in ("claim", "passed", "value", "threshold", "detail", "source") if claims and c in claims[0]]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in claims:
        table.add_row(*[row[c] for c in columns],
                      style="green" if row["passed"] == "true" else "red")
    console.print(table)


@main.command()
@click.argument("experiments", nargs=-1)
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root the workflow writes to.")
@STAGE_MODULES
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--verify", is_flag=True, help="Also check every stored file against its recorded sha256 (exit 1 if any "
                                             "is damaged; snakemake --config verify=full recomputes it).")
def status(experiments: tuple[str, ...], results_root: str, stage_modules: str | None, as_json: bool, verify: bool) -> None:
    """How far EXPERIMENTS are (names in the results folder, spec files or folders, or specs under
    experiments/, as for `pl-dsl run`; default every experiment in the results folder): units done,
    running, failed and pending per stage, runs complete, the estimated compute left, and the
    running jobs' progress. Reads only; safe while snakemake runs."""
    from pl_dsl.engine.names import recorded_spec, results_names, spec_files
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.plan import build_plan
    from pl_dsl.engine.progress import duration
    from pl_dsl.engine.status import collect_status
    from pl_dsl.engine.workflow import check_or_exit

    registry = _registry(stage_modules)
    layout = Layout(Path(results_root))
    if experiments:
        files = _named("status", lambda: spec_files(experiments, layout, Path.cwd()))
    else:
        names = results_names(layout)
        if not names:
            _console().print(f"no experiments in {layout.root}/ yet: `pl-dsl run SPEC` makes one", markup=False)
            return
        recorded = {name: recorded_spec(layout, name) for name in names}
        for name in (n for n, spec in recorded.items() if spec is None):
            _console(err=True).print(f"pl-dsl status: {name}: the spec that made it is gone; `pl-dsl results {name}` "
                                     "still shows its table", markup=False)
        files = list(dict.fromkeys(spec for spec in recorded.values() if spec is not None))
    checked = check_or_exit(files, registry, skip_missing_data=True)
    state = collect_status(build_plan(checked, registry), layout, verify=verify)
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
@STAGE_MODULES
@click.option("--yes", is_flag=True, help="Delete (without it, only list what would be deleted).")
def gc(experiments: tuple[str, ...], results_root: str, stage_modules: str | None, yes: bool) -> None:
    """Remove stored units, manifests and plans that no selected spec references (EXPERIMENTS as for
    `status`; default every spec under experiments/, subfolders included). Lists them and the bytes
    they take; deletes only with --yes. Do not run it while snakemake runs other specs in this folder."""
    from pl_dsl.engine.gc import garbage, remove
    from pl_dsl.engine.names import spec_files
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.plan import build_plan

    registry = _registry(stage_modules)
    layout = Layout(Path(results_root))
    files = (_named("gc", lambda: spec_files(experiments, layout, Path.cwd())) if experiments
             else sorted(Path("experiments").rglob("*.yaml")))
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
    found = garbage(build_plan(checked, registry), layout)
    total = sum(size for _, size in found)
    console = _console()
    for path, size in found:
        console.print(f"{'removed' if yes else 'would remove'} {path} ({size / 2**20:.2f} MB)", markup=False)
    if yes:
        remove([path for path, _ in found])
    console.print(f"{len(found)} unreferenced item(s), {total / 2**20:.1f} MB "
                  + ("freed" if yes else "would be freed; run again with --yes to delete them"), markup=False)


@main.command(name="rm")
@click.argument("experiments", nargs=-1, required=True)
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root.")
@click.option("--yes", is_flag=True, help="Delete (without it, only list what would be deleted).")
def remove_experiments(experiments: tuple[str, ...], results_root: str, yes: bool) -> None:
    """Remove EXPERIMENTS (names in the results folder, or their specs): each results folder, its
    table plans and the stored units no other experiment's results use. Lists them and their
    bytes; deletes only with --yes. Do not run it while the experiment runs."""
    from pl_dsl.engine.gc import removal, remove
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.engine.paths import Layout

    layout = Layout(Path(results_root))
    console = _console()
    for item in experiments:
        name = _named("rm", lambda item=item: experiment_name(item, layout, Path.cwd()))  # type: ignore[misc]
        if not layout.experiment(name).is_dir():
            _console(err=True).print(f"pl-dsl rm: no results for '{name}' in {layout.root}/", markup=False)
            sys.exit(1)
        found = removal(name, layout)
        for path, size in found:
            console.print(f"{'removed' if yes else 'would remove'} {path} ({size / 2**20:.2f} MB)", markup=False)
        if yes:
            remove([path for path, _ in found])
        total = sum(size for _, size in found) / 2**20
        console.print(f"{name}: {len(found)} item(s), {total:.1f} MB " + (
            "freed" if yes else "would be freed (units other experiments use stay); run again with --yes to delete"),
            markup=False)


@main.command()
@click.argument("experiment")
@click.option("--to", "to", type=click.Choice(["mlflow", "tensorboard"]), required=True, help="The tracker.")
@click.option("--uri", help="Where to write: an MLflow tracking URI or folder (default: where MLflow reads by "
                             "default, $MLFLOW_TRACKING_URI or ./mlflow.db), a TensorBoard folder (default tensorboard/).")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root.")
def export(experiment: str, to: str, uri: str | None, results_root: str) -> None:
    """Export the runs of EXPERIMENT to MLflow (one MLflow run per run: every field of its resolved
    spec as a param under its dotted name, final metrics, loss curves as step series, the spec as
    an artifact; experiment, run id, spec hash and status as tags; exporting again replaces) or
    TensorBoard (the same fields as HParams, and scalars). Needs pip install 'pl-dsl[mlflow]' or
    'pl-dsl[tensorboard]'."""
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.engine.paths import Layout
    from pl_dsl.errors import StageFailure
    from pl_dsl.report.export import export as export_runs

    layout = Layout(Path(results_root))
    experiment = _named("export", lambda: experiment_name(experiment, layout, Path.cwd()))
    try:
        count, where = export_runs(experiment, layout, to, uri)
    except StageFailure as exc:
        _console(err=True).print(f"pl-dsl export: {exc}", markup=False)
        sys.exit(1)
    _console().print(f"exported {count} runs of {experiment} to {to} at {where}", markup=False)


@main.command(name="list")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root.")
def list_experiments(results_root: str) -> None:
    """Every experiment in the results root: its spec, runs done of its runs, claims passed and
    when it last changed (newest first)."""
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.catalog import age, experiments

    entries = experiments(Layout(Path(results_root)))
    if not entries:
        _console().print(f"no experiments in {results_root}/ yet: `pl-dsl run SPEC` makes one", markup=False)
        return
    table = Table(title=f"experiments in {results_root}/")
    for column in ("experiment", "spec", "runs done", "claims passed", "last change"):
        table.add_column(column, justify="right" if column in ("runs done", "claims passed") else "left")
    for entry in entries:
        claims = f"{entry.claims_passed}/{entry.claims}" if entry.claims is not None else "-"
        table.add_row(entry.name, entry.spec or "?", f"{entry.runs_done}/{entry.runs}", claims, age(entry.changed),
                      style="green" if entry.runs and entry.runs_done == entry.runs else None)
    _console().print(table)


@main.command()
@click.argument("first")
@click.argument("second")
@click.option("--metric", "-m", "metrics", multiple=True, help="Metrics to compare (default: the main ones).")
@click.option("--results", "results_root", default="results", show_default=True, type=click.Path(file_okay=False),
              help="Results root.")
def compare(first: str, second: str, metrics: tuple[str, ...], results_root: str) -> None:
    """Two experiments side by side on the axes they share: each metric in FIRST and SECOND and
    their difference, points that differ marked (* and colour)."""
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.engine.paths import Layout
    from pl_dsl.report.catalog import compare as compare_tables
    from pl_dsl.report.catalog import spec_differences

    layout, err = Layout(Path(results_root)), _console(err=True)
    first, second = (_named("compare", lambda item=item: experiment_name(item, layout, Path.cwd()))  # type: ignore[misc]
                     for item in (first, second))
    known = _registry(None).metrics()
    present = [path.parent.name for path in Path(results_root).glob("*/results.csv")]
    for name in (first, second):
        if not layout.table(name).exists():
            err.print(f"no results for '{name}' at {layout.table(name)}{did_you_mean(name, present)}", markup=False)
            sys.exit(1)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        hints = "".join(did_you_mean(m, known) for m in unknown)
        raise click.BadParameter(f"unknown metric(s) {', '.join(unknown)}{hints}; known: {known_names(known)}",
                                 param_hint="--metric")
    shown = list(metrics) or ["f_train_acc", "g_clean_acc", "agreement"]
    result = compare_tables(layout.table(first), layout.table(second), shown, set(known))
    console = _console()
    every = [key for key, _ in result.matched] + [key for key, _ in result.only_a] + [key for key, _ in result.only_b]
    columns = [i for i, _ in enumerate(result.fields) if len({key[i] for key in every}) > 1]
    fields = [result.fields[i] for i in columns]
    if result.matched:
        table = Table(title=f"{first} (A) vs {second} (B): {len(result.matched)} points matched on "
                            f"{', '.join(result.fields) or 'no field (one run each)'}")
        for field in fields:
            table.add_column(field)
        for metric in shown:
            for column in (f"{metric} A", f"{metric} B", "B - A"):
                table.add_column(column, justify="right")
        for key, values in result.matched:
            cells, differs = [cell(str(key[i])) for i in columns], False
            for metric in shown:
                a, b = values[metric]
                marked = result.differs(a, b)
                differs = differs or marked
                delta = "-" if a is None or b is None else f"{b - a:+.4g}"
                cells += ["-" if a is None else f"{a:.4g}", "-" if b is None else f"{b:.4g}", delta + (" *" if marked else "")]
            table.add_row(*cells, style="yellow" if differs else None)
        console.print(table)
    else:
        console.print(f"no point of {first} matches a point of {second} on {', '.join(result.fields)}: both are shown "
                      "apart", markup=False)
    for label, name, rows in (("A", first, result.only_a), ("B", second, result.only_b)):
        if not rows:
            continue
        table = Table(title=f"{len(rows)} point(s) only in {name} ({label}): the other has no run there")
        for column in [*fields, *shown]:
            table.add_column(column, justify="right" if column in shown else "left")
        for key, alone in rows:
            table.add_row(*[cell(str(key[i])) for i in columns],
                          *["-" if alone[m] is None else f"{alone[m]:.4g}" for m in shown])
        console.print(table)
    if result.unknown:
        console.print(f"the runs of one side do not record {', '.join(result.unknown)}, which the other varies: "
                      "their points match on the other fields only", style="yellow", markup=False)
    differences = spec_differences(layout, first, second, result.fields)
    if differences:
        console.print(f"the specs also differ in: {'; '.join(differences)}", markup=False)
    console.print(f"{result.differing} of {len(result.matched)} matched points differ (marked *); "
                  f"{len(result.only_a)} only in A and {len(result.only_b)} only in B (missing from the other, "
                  "not compared)", markup=False)


@main.command()
@click.option("--require-cuda", is_flag=True, help="Exit 1 unless PyTorch sees a CUDA device (for GPU nodes).")
@click.option("--calibrate", is_flag=True,
              help="Measure the training throughput of this machine's CPU (one core) and GPU (one net, and nets "
                   "stacked) and store it for runtime requests and `pl-dsl runs --device` (about half a minute).")
def doctor(require_cuda: bool, calibrate: bool) -> None:
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
    if calibrate:
        from pl_dsl.engine import calibration

        for kind, entry in calibration.calibrate().items():
            stacked = (f", {entry['stacked_multiply_adds_per_second'] / 1e9:.1f} G stacked ({entry['stack']} nets)"
                       if "stacked_multiply_adds_per_second" in entry else "")
            console.print(f"calibrated {kind} ({entry.get('device_name', 'one core')}): "
                          f"{entry['multiply_adds_per_second'] / 1e9:.1f} G multiply-adds/s alone{stacked}", markup=False)
        console.print(f"stored in {calibration.calibration_file()}", markup=False)
    if require_cuda and not report.cuda_devices:
        _console(err=True).print(f"no CUDA device: {report.cuda_problem}", markup=False)
        sys.exit(1)
