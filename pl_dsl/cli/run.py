"""`pl-dsl run`: specs and overrides to checked experiments, Snakemake behind one progress line,
then each experiment's results and claims."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pl_dsl.cli import render
from pl_dsl.cli.common import CommandError, console, fail_with, named, registry
from pl_dsl.spec.check import check_file
from pl_dsl.spec.expand import Experiment

if TYPE_CHECKING:
    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.registry import Registry
    from pl_dsl.spec.messages import SpecError


@dataclass
class Prepared:
    """The spec files a run launches (derived ones where there are changes), their experiments and
    the warnings to show."""

    files: list[Path]
    experiments: list[Experiment]
    warnings: list[SpecError]
    notes: list[str] = field(default_factory=list)  # what each -m did to the spec's sweep and plots
    errors: list[SpecError] = field(default_factory=list)  # of deriving, reported with the check's


def prepare(items: tuple[str, ...], multirun: tuple[str, ...], name: str | None, layout: Layout,
            registry: Registry, skip_missing_data: bool = False, scratch: Path | None = None,
            force: bool = False) -> Prepared:
    """Resolve ITEMS (specs and FIELD=VALUE changes) and -m axes to checked experiments, deriving
    an experiment per spec where there are changes (its spec written under `scratch` when given,
    else in results/); usage errors exit 2, invalid specs 1. Missing data files are errors too
    (the workflow would refuse to start), unless skip_missing_data (the workflow's
    `missing_data=skip`, which leaves such specs out); so is a spec whose name holds another spec's
    results, unless force."""
    return check_prepared(resolve_files(items, multirun, name, layout, registry, scratch), registry, layout,
                          skip_missing_data, force)


def resolve_files(items: tuple[str, ...], multirun: tuple[str, ...], name: str | None, layout: Layout,
                  registry: Registry, scratch: Path | None = None) -> Prepared:
    """The first half of `prepare`: the spec files to launch, derived ones written, not yet checked
    (no experiments; the errors of deriving kept to report with the check's)."""
    from pl_dsl.engine.names import spec_files
    from pl_dsl.launch import UsageError, derive, is_change, parse_change, project_root

    specs = [item for item in items if not is_change(item)]
    try:
        changes = ([parse_change(item, registry.schema) for item in items if is_change(item)]
                   + [parse_change(argument, registry.schema, True) for argument in multirun])
        project_root()  # the workflow that runs them
    except UsageError as exc:
        raise CommandError(str(exc), 2) from None
    files = [file.resolve() for file in named(lambda: spec_files(specs, layout, Path.cwd()))]
    if not files:
        raise CommandError(f"no specs: name spec files, folders or experiment names (there is no "
                           f"{Path.cwd() / 'experiments'}/*.yaml to run by default)", 2)
    if name and len(files) != 1:
        raise CommandError("--name names one derived experiment: give exactly one spec", 2)
    if name and not changes:
        raise CommandError("--name names a derived experiment, and there is none without FIELD=VALUE or -m "
                           "(to rename an experiment, change its spec's name:)", 2)
    errors: list[SpecError] = []
    notes: list[str] = []
    if changes:
        derived = []
        for file in files:
            try:
                target, derive_errors, derive_notes = derive(file, changes, layout, registry, name, scratch)
            except UsageError as exc:
                raise CommandError(str(exc), 2) from None
            errors.extend(derive_errors)
            notes.extend(dict.fromkeys(derive_notes))
            if not derive_errors:
                derived.append(target)
        files = derived
    return Prepared(files, [], [], list(dict.fromkeys(notes)), errors)


def check_prepared(prepared: Prepared, registry: Registry, layout: Layout, skip_missing_data: bool = False,
                   force: bool = False) -> Prepared:
    """The second half of `prepare`: each file checked as `pl-dsl validate` checks it (exits on
    errors), and the name clash refused unless force; fills in the experiments and warnings."""
    errors = list(prepared.errors)
    for file in prepared.files:  # the same check, and messages, as `pl-dsl validate`
        experiment, found = check_file(file, registry)
        errors.extend(found)
        if experiment is not None:
            prepared.experiments.append(experiment)
            stopping = [w for w in experiment.warnings if w.stops_runs and not skip_missing_data]
            errors.extend(replace(warning, level="error") for warning in stopping)
            prepared.warnings.extend(w for w in experiment.warnings if w not in stopping)
    if errors:  # a mistake in a FIELD=VALUE argument is one of the command line (exit 2)
        at_arguments = any(error.file.startswith("argument ") for error in errors)
        fail_with([*errors, *prepared.warnings], 2 if at_arguments else 1)
    if not force:  # refused before anything is printed, so nothing of the other spec shows as this run's
        from pl_dsl.engine.workflow import name_clashes

        clashes = name_clashes(prepared.experiments, layout)
        if clashes:
            raise CommandError("\n".join(clashes), bare=True)
    return prepared


class RunCommand(click.Command):
    """Keeps what follows `--` for Snakemake instead of reading it as arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["snakemake_args"], args = args[split + 1:], args[:split]
        return super().parse_args(ctx, args)


@click.command(cls=RunCommand)
@click.argument("items", nargs=-1)
@click.option("-m", "--multirun", "multirun", multiple=True, metavar="FIELD=a,b,...",
              help="Sweep FIELD over these values too (an axis added to the spec's sweep; repeatable).")
@click.option("--name", help="Name of the derived experiment (default: <name>+<changes>+<hash>, or <name>+<hash> "
                                 "where the changes are long).")
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
    from pl_dsl.engine.names import derivation
    from pl_dsl.engine.paths import Layout
    from pl_dsl.launch import INTERRUPTED, PlainProgress, Tracker, failure_lines, locked_out, run_workflow, snakemake_command
    from pl_dsl.report.results import read_table

    err, out = console(err=True), console()
    layout = Layout(Path(results_root))
    stages = registry(None)
    snakemake_args = ctx.meta.get("snakemake_args", [])
    skip = "missing_data=skip" in snakemake_args  # the workflow leaves specs without data out
    if dry_run:  # derived specs go to a folder of its own: a dry run leaves nothing in results/
        with tempfile.TemporaryDirectory(prefix="pl-dsl-dry-run-") as scratch, \
                tempfile.TemporaryFile("w+", encoding="utf-8") as planned:
            files = resolve_files(items, multirun, name, layout, stages, Path(scratch))
            # Snakemake plans while this process checks the specs and works out the units (its
            # output is kept, and shown only once the specs pass)
            snakemake = None if files.errors else subprocess.Popen(
                snakemake_command(files.files, cores, profile, True, force, layout, snakemake_args),
                stdout=planned, stderr=subprocess.STDOUT, text=True)
            try:
                prepared = check_prepared(files, stages, layout, skip, force)
                for line in [*map(str, prepared.warnings), *prepared.notes]:
                    err.print(line, markup=False)
                tracker = Tracker.of(prepared.experiments, layout, stages).ready()
                assert snakemake is not None  # the check stops where deriving failed
                code = snakemake.wait()
            finally:
                if snakemake is not None and snakemake.poll() is None:
                    snakemake.kill()
                    snakemake.wait()
            planned.seek(0)
            shutil.copyfileobj(planned, sys.stdout)
        out.print(f"units per stage: {tracker.reuse(planned=True)}", markup=False)
        sys.exit(code)
    prepared = prepare(items, multirun, name, layout, stages, skip_missing_data=skip, force=force)
    for line in [*map(str, prepared.warnings), *prepared.notes]:
        err.print(line, markup=False)
    command = snakemake_command(prepared.files, cores, profile, dry_run, force, layout, snakemake_args)
    tracker = Tracker.of(prepared.experiments, layout, stages)
    log = layout.logs / "run" / f"{time.strftime('%Y%m%d-%H%M%S')}.log"
    names = ", ".join(e.name for e in prepared.experiments)
    for experiment in prepared.experiments:
        derived = derivation(Path(experiment.file))
        if derived:
            out.print(f"{experiment.name} is {derived}", markup=False)
    out.print(f"running {names} (Snakemake's log: {log})", markup=False)
    if out.is_terminal:
        with out.status("") as status:
            code = run_workflow(command, log, verbose, tracker, lambda line: status.update(line))
    else:  # a pipe or a log file: a plain line at most every 10 s
        code = run_workflow(command, log, verbose, tracker, PlainProgress(lambda line: out.print(line, markup=False)))
    again = shlex.join(["pl-dsl", *sys.argv[1:]])
    if code not in (0, INTERRUPTED) and locked_out(log):
        raise CommandError(f"{names} is being computed by another run in {Path.cwd()} (pl-dsl run or snakemake), and "
                           f"two runs must not write the same results: wait for it to finish (`pl-dsl status` shows "
                           f"its progress), then run again; nothing was done. If no other run is alive (one was "
                           f"killed), `{again} -- --unlock` removes its stale lock.", code)
    out.print(tracker.line(), markup=False)
    out.print(f"units per stage: {tracker.reuse(planned=False)}", markup=False)
    if tracker.accuracy():
        out.print(tracker.accuracy(), markup=False)
    if code == INTERRUPTED:
        finished, total = tracker.runs_done()
        raise CommandError(f"interrupted; {finished} of {total} runs are complete and every unit computed so far is "
                           f"stored: `{again}` again computes only the rest", code)
    for experiment in prepared.experiments:
        table = layout.table(experiment.name)
        if table.exists():
            render.results_table(out, experiment.name, read_table(table), table, layout, [], False, stages, max_rows=40)
    if code != 0:
        for line in [] if verbose else failure_lines(log):
            err.print(line, markup=False)
        raise CommandError(f"Snakemake failed (exit {code}); its log: {log}", code)
    sys.exit(code)
