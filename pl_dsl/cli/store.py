"""Commands over the results store: status, gc, rm, export."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pl_dsl.cli import render
from pl_dsl.cli.common import (
    STAGE_MODULES,
    CommandError,
    console,
    fail_with,
    named,
    no_experiments,
    registry,
    results_option,
)
from pl_dsl.spec.check import check_file

if TYPE_CHECKING:
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.registry import Registry
    from pl_dsl.engine.status import Status
    from pl_dsl.spec.expand import Experiment


@dataclass
class StatusReport:
    """The state of the experiments asked about, the damaged files found and notes on the way."""

    state: Status | None
    notes: list[str] = field(default_factory=list)

    @property
    def damaged(self) -> list[str]:
        return sorted({line for e in self.state.experiments for line in e.damage}) if self.state else []


def status_of(experiments: tuple[str, ...], layout: Layout, registry: Registry, verify: bool) -> StatusReport:
    """How far EXPERIMENTS are (default: every experiment in the results folder whose spec is
    still there); reads only."""
    from pl_dsl.engine.names import recorded_spec, results_names, spec_files
    from pl_dsl.engine.plan import build_plan
    from pl_dsl.engine.status import collect_status
    from pl_dsl.engine.workflow import check_or_exit
    from pl_dsl.spec.bulk import kept_for_good

    report = StatusReport(None)
    if experiments:
        files = named(lambda: spec_files(experiments, layout, Path.cwd()))
    else:
        names = results_names(layout)
        if not names:
            return report
        recorded = {name: recorded_spec(layout, name) for name in names}
        report.notes = [f"{name}: the spec that made it is gone; `pl-dsl results {name}` still shows its table"
                        for name, spec in recorded.items() if spec is None]
        files = list(dict.fromkeys(spec for spec in recorded.values() if spec is not None))
    checked = check_or_exit(files, registry, skip_missing_data=True)
    plan = build_plan(checked, registry)
    kept_for_good()  # the plan lives until the command ends; the store's reading would walk it again
    report.state = collect_status(plan, layout, verify=verify)
    return report


@click.command()
@click.argument("experiments", nargs=-1)
@results_option("Results root the workflow writes to.")
@STAGE_MODULES
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option("--verify", is_flag=True, help="Also check every stored file against its recorded sha256 (exit 1 if any "
                                             "is damaged; snakemake --config verify=full recomputes it).")
def status(experiments: tuple[str, ...], results_root: str, stage_modules: str | None, as_json: bool, verify: bool) -> None:
    """How far EXPERIMENTS are (names in the results folder, spec files or folders, or specs under
    experiments/, as for `pl-dsl run`; default every experiment in the results folder): units done,
    running, failed and pending per stage, runs complete, the estimated compute left, and the
    running jobs' progress. Reads only; safe while snakemake runs."""
    from pl_dsl.engine.paths import Layout

    layout = Layout(Path(results_root))
    report = status_of(experiments, layout, registry(stage_modules), verify)
    for note in report.notes:
        console(err=True).print(f"pl-dsl status: {note}", markup=False)
    if report.state is None:
        console().print(no_experiments(layout.root), markup=False)
        return
    if as_json:
        click.echo(json.dumps(report.state.to_json(), indent=1))
    else:
        render.status(console(), report.state, verify)
    if verify and not as_json:
        render.damage(console(), report.damaged)
    if as_json or verify:
        raise SystemExit(1 if report.damaged else 0)


def checked_specs(files: list[Path], registry: Registry) -> list[Experiment]:
    """Every spec's experiment; gc removes nothing while a spec cannot be read (exit 1)."""
    checked = []
    for file in files:  # specs whose data are missing here still keep their results
        experiment, errors = check_file(file, registry)
        if experiment is None:
            fail_with([*errors, f"pl-dsl gc: {file} is invalid; nothing is removed while a spec cannot be read"])
        checked.append(experiment)
    return checked


@click.command()
@click.argument("experiments", nargs=-1)
@results_option("Results root the workflow writes to.")
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

    stages = registry(stage_modules)
    layout = Layout(Path(results_root))
    files = (named(lambda: spec_files(experiments, layout, Path.cwd())) if experiments
             else sorted(Path("experiments").rglob("*.yaml")))
    found = garbage(build_plan(checked_specs(files, stages), stages), layout)
    render.removal(console(), found, yes)
    if yes:
        remove([path for path, _ in found])
    total = sum(size for _, size in found) / 2**20
    console().print(f"{len(found)} unreferenced item(s), {total:.1f} MB "
                    + ("freed" if yes else "would be freed; run again with --yes to delete them"), markup=False)


@click.command(name="rm")
@click.argument("experiments", nargs=-1, required=True)
@results_option()
@click.option("--yes", is_flag=True, help="Delete (without it, only list what would be deleted).")
def remove_experiments(experiments: tuple[str, ...], results_root: str, yes: bool) -> None:
    """Remove EXPERIMENTS (names in the results folder, or their specs): each results folder, its
    table plans and the stored units no other experiment's results use. Lists them and their
    bytes; deletes only with --yes. Do not run it while the experiment runs."""
    from pl_dsl.engine.gc import removal, remove
    from pl_dsl.engine.names import experiment_name
    from pl_dsl.engine.paths import Layout

    layout = Layout(Path(results_root))
    for item in experiments:
        name = named(lambda item=item: experiment_name(item, layout, Path.cwd()))  # type: ignore[misc]
        if not layout.experiment(name).is_dir():
            raise CommandError(f"no results for '{name}' in {layout.root}/")
        found = removal(name, layout)
        render.removal(console(), found, yes)
        if yes:
            remove([path for path, _ in found])
        total = sum(size for _, size in found) / 2**20
        console().print(f"{name}: {len(found)} item(s), {total:.1f} MB " + (
            "freed" if yes else "would be freed (units other experiments use stay); run again with --yes to delete"),
            markup=False)


@click.command()
@click.argument("experiment")
@click.option("--to", "to", type=click.Choice(["mlflow", "tensorboard"]), required=True, help="The tracker.")
@click.option("--uri", help="Where to write: an MLflow tracking URI or folder (default: where MLflow reads by "
                             "default, $MLFLOW_TRACKING_URI or ./mlflow.db), a TensorBoard folder (default tensorboard/).")
@results_option()
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
    experiment = named(lambda: experiment_name(experiment, layout, Path.cwd()))
    try:
        count, where = export_runs(experiment, layout, to, uri)
    except StageFailure as exc:
        raise CommandError(str(exc)) from None
    console().print(f"exported {count} runs of {experiment} to {to} at {where}", markup=False)
