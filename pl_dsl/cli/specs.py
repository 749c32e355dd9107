"""Commands that read specs: validate, show, schema, runs (and the compute a spec launches)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pl_dsl.cli import render
from pl_dsl.cli.common import STAGE_MODULES, console, fail_with, registry
from pl_dsl.spec.bulk import collector_paused
from pl_dsl.spec.check import check_file
from pl_dsl.spec.expand import Experiment
from pl_dsl.spec.messages import SpecError

if TYPE_CHECKING:
    from pl_dsl.engine.registry import Registry


@dataclass
class Checked:
    """One spec file checked: its experiment (None when invalid), errors and warnings."""

    file: str
    experiment: Experiment | None
    errors: list[SpecError]
    warnings: list[SpecError] = field(default_factory=list)


@dataclass
class Validation:
    """Every file checked, the experiment names several specs use, and the exit code."""

    checked: list[Checked]
    clashes: dict[str, list[str]]

    @property
    def code(self) -> int:
        return 1 if self.clashes or any(c.errors for c in self.checked) else 0


def validate_files(files: list[str], registry: Registry) -> Validation:
    """Check each spec as `pl-dsl run` would, and that no two specs share a name (their results
    would land in the same folder)."""
    checked: list[Checked] = []
    names: dict[str, list[str]] = {}
    for file in files:
        experiment, errors = check_file(file, registry)
        warnings = [*experiment.warnings, *cuda_warnings(file, experiment)] if experiment is not None else []
        checked.append(Checked(file, experiment, errors, warnings))
        if experiment is not None:
            names.setdefault(experiment.name, []).append(file)
    return Validation(checked, {name: clashing for name, clashing in names.items() if len(clashing) > 1})


def cuda_warnings(file: str, experiment: Experiment) -> list[SpecError]:
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


def checked_experiment(spec: str, registry: Registry) -> Experiment:
    """The experiment of a valid spec; its located errors (exit 1) otherwise."""
    experiment, errors = check_file(spec, registry)
    if experiment is None:
        fail_with(errors)
    return experiment


@dataclass
class Summary:
    """What specs launch: per spec its runs, distinct units per stage and estimated compute hours."""

    stages: list[str]
    rows: list[tuple[str, int, list[int], float]]
    rate: str
    device: str
    errors: list[SpecError]


@collector_paused()  # the plans' millions of objects are walked by no full collection meanwhile
def summarize(files: list[Path], registry: Registry, device: str = "cpu") -> Summary:
    """Per spec: runs, distinct units per stage (step prefixes count once) and the estimated compute
    from the cost model, at the rate `pl-dsl doctor --calibrate` stored for this device kind where
    there is one (on CUDA with nets stacked by shape)."""
    from pl_dsl.engine.calibration import load
    from pl_dsl.engine.plan import batch_seconds, build_plan, calibrated_seconds

    calibration = load().get(device)
    if calibration:
        rate = f"calibrated on {calibration.get('device_name', 'this CPU, one core')} ({calibration['measured']})"
    else:
        rate = "the cost model's CPU core rate" + (": no CUDA calibration here (pl-dsl doctor --calibrate on a GPU "
                                                   "node)" if device == "cuda" else "")
    summary = Summary(list(registry.names), [], rate, device, [])
    for file in files:
        experiment, errors = check_file(file, registry)
        if experiment is None:
            summary.errors.extend(errors)
            continue
        plan = build_plan([experiment], registry, stack="on" if device == "cuda" else "auto")
        units = plan.experiments[experiment.name].units
        seconds = sum((calibrated_seconds(members, device) if calibration else None) or batch_seconds(members)
                      for members in units.values())
        summary.rows.append((str(file), len(experiment.runs), [len(units[s]) for s in registry.names], seconds / 3600))
    return summary


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@STAGE_MODULES
def validate(files: tuple[str, ...], stage_modules: str | None) -> None:
    """Check spec FILES: every error as file:line:col: field: message (exit 1), else one line per file."""
    validation = validate_files(list(files), registry(stage_modules))
    render.validation(validation, console(), console(err=True))
    raise SystemExit(validation.code)


@click.command()
@click.argument("spec", type=click.Path(exists=True, dir_okay=False))
@STAGE_MODULES
def show(spec: str, stage_modules: str | None) -> None:
    """Print SPEC as it runs: its bases (`extends:`) merged in, as YAML, after checking it."""
    import yaml

    from pl_dsl.spec.compose import load_composed

    checked_experiment(spec, registry(stage_modules))
    data = load_composed(Path(spec).read_text(encoding="utf-8"), spec).data
    click.echo(f"# {spec}, resolved (bases merged in)\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                                                                            width=120), nl=False)


@click.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write it to this file (default: print it).")
@STAGE_MODULES
def schema(output: str | None, stage_modules: str | None) -> None:
    """The experiment JSON Schema, assembled from the sections the registered stages declare
    (with the project's own stages). pl-dsl's own is pl_dsl/spec/experiment.schema.json:
    `pl-dsl schema -o pl_dsl/spec/experiment.schema.json` rewrites it after a stage changed."""
    from pl_dsl.spec.schema import schema_text

    text = schema_text(registry(stage_modules).schema)
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text, encoding="utf-8")
    console().print(f"wrote {output}", markup=False)


@click.command()
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
    stages = registry(stage_modules)
    if Path(path).is_dir() or summary:
        files = sorted(Path(path).rglob("*.yaml")) if Path(path).is_dir() else [Path(path)]
        launched = summarize(files, stages, device)
        render.summary(launched, console(), console(err=True))
        if launched.errors:
            raise SystemExit(1)
        return
    experiment = checked_experiment(path, stages)
    if as_json:
        click.echo(json.dumps([{"id": r.id, "varied": r.varied, "spec": r.spec} for r in experiment.runs], indent=1))
        return
    console().print(render.run_list(experiment))
