"""What the commands show: the data they compute as rich tables and plain lines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from pl_dsl.cli.common import cell
from pl_dsl.engine.store import DIVERGED, NONFINITE

if TYPE_CHECKING:
    from pl_dsl.cli.results import Compared
    from pl_dsl.cli.specs import Summary, Validation
    from pl_dsl.engine.registry import Registry
    from pl_dsl.engine.status import Status
    from pl_dsl.report.catalog import Entry
    from pl_dsl.spec.expand import Experiment


def _table(title: str, columns: list[str], right: set[str] | None = None, **options: Any) -> Table:
    """A table with these columns, those in right aligned right; a narrow terminal folds a long
    header or cell onto more lines instead of cutting it."""
    table = Table(title=title, **options)
    for column in columns:
        table.add_column(column, justify="right" if right and column in right else "left", overflow="fold")
    return table


def validation(checked: Validation, out: Console, err: Console) -> None:
    """Errors in red and warnings in yellow (plain when piped), one `valid, N runs` line per good file."""
    for item in checked.checked:
        for message, colour in [*((e, "red") for e in item.errors), *((w, "yellow") for w in item.warnings)]:
            err.print(f"[{colour}]{message}[/{colour}]" if err.is_terminal else str(message), markup=err.is_terminal)
        if item.experiment is not None:
            count = len(item.experiment.runs)
            out.print(f"{item.file}: valid, {count} run{'s' if count != 1 else ''}", markup=False)
    for name, clashing in checked.clashes.items():
        err.print(f"experiment name '{name}' is used by several specs ({', '.join(clashing)}); names must be unique",
                  markup=False)


def summary(launched: Summary, out: Console, err: Console) -> None:
    """What each spec launches (the estimate also as a duration: small specs show 0.00 hours), then
    the errors of those that are invalid."""
    from pl_dsl.engine.progress import duration

    hours = f"est. {'GPU' if launched.device == 'cuda' else 'CPU core'}-hours"
    table = _table(f"what the specs launch (compute estimated from the stage cost model; {launched.rate})",
                   ["spec", "runs", *launched.stages, hours], {"runs", *launched.stages, hours})
    for file, runs, units, estimate in launched.rows:
        table.add_row(file, str(runs), *map(str, units), f"{estimate:.2f} ({duration(estimate * 3600)})")
    out.print(table)
    for error in launched.errors:
        err.print(str(error), markup=False)


def run_list(experiment: Experiment) -> Table:
    """The runs of a spec: id and the values varied in each."""
    table = _table(f"{experiment.name}: {len(experiment.runs)} runs", ["run", *experiment.axes])
    for run in experiment.runs:
        table.add_row(run.id, *[str(run.varied[a]) for a in experiment.axes])
    return table


def results_table(console: Console, name: str, rows: list[dict[str, str]], table_path: Path, layout: Any,
                  metrics: list[str], over_seeds: bool, registry: Registry, max_rows: int | None = None) -> None:
    """An experiment's results table (or one row per point over the seeds), its diverged runs and
    its claims. With max_rows, a longer table is left to `pl-dsl results`."""
    from pl_dsl.engine.names import derivation
    from pl_dsl.report.results import over_seeds_rows, read_table, table_columns

    known = registry.metrics()
    axes, shown = table_columns(rows, known, metrics)
    keys = [a for a in axes if a != "seed"]
    derived = derivation(layout.experiment(name) / "spec.yaml")
    if derived:
        console.print(f"{name} is {derived}", markup=False)
    if max_rows is not None and len(rows) > max_rows:
        console.print(f"{name}: {len(rows)} runs in {table_path} (`pl-dsl results {name}` shows them)", markup=False)
    elif over_seeds:
        points = over_seeds_rows(rows, keys, shown)
        table = _table(f"{name}: {len(points)} points, mean (min-max) over seeds", [*keys, "seeds", *shown],
                       {"seeds", *shown})
        for point in points:
            cells = [f"{float(point[f'{m}_mean']):.4g} ({float(point[f'{m}_min']):.4g}-{float(point[f'{m}_max']):.4g})"
                     if point[f"{m}_mean"] != "" else "-" for m in shown]
            table.add_row(*[cell(str(point[k])) for k in keys], str(point["seeds"]), *cells)
        console.print(table)
    else:
        table = _table(f"{name}: {len(rows)} runs ({table_path})", ["run", *axes, *shown], set(known))
        for row in rows:
            table.add_row(row["run"], *[cell(row[a]) for a in axes], *[cell(row[m]) if row[m] else "-" for m in shown])
        console.print(table)
    for status, heading in NOT_OK_HEADINGS.items():
        marked = [row for row in rows if row.get("status") == status]
        if marked:
            console.print(f"{len(marked)} of {len(rows)} runs {heading}:", style="yellow", markup=False)
            for row in marked:
                values = ", ".join(f"{a}={row[a]}" for a in axes)
                console.print(f"  {row['run']} ({values}): {row['note']}", style="yellow", markup=False)
    if layout.claims(name).exists():
        claims(console, name, read_table(layout.claims(name)))


# How a results table lists its runs that are not ok, per status (engine/store.py).
NOT_OK_HEADINGS = {
    DIVERGED: "diverged (no metrics)",
    NONFINITE: "went non-finite as the authors' code computes them (their scores shown: a NaN output is wrong "
                  "and agrees with nothing)",
}


def claims(console: Console, name: str, rows: list[dict[str, str]]) -> None:
    """The claims table: green rows passed, red rows failed."""
    passed = sum(row["passed"] == "true" for row in rows)
    columns = [c for c in ("claim", "passed", "value", "threshold", "detail", "source") if rows and c in rows[0]]
    table = Table(title=f"{name}: {passed} of {len(rows)} claims pass")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[row[c] for c in columns], style="green" if row["passed"] == "true" else "red")
    console.print(table)


def catalog(entries: list[Entry], root: str) -> Table:
    """Every experiment of a results root, complete ones in green."""
    from pl_dsl.report.catalog import age

    table = _table(f"experiments in {root}/", ["experiment", "spec", "runs done", "claims passed", "last change"],
                   {"runs done", "claims passed"})
    for entry in entries:
        claims_passed = f"{entry.claims_passed}/{entry.claims}" if entry.claims is not None else "-"
        table.add_row(entry.name, entry.spec or "?", f"{entry.runs_done}/{entry.runs}", claims_passed,
                      age(entry.changed), style="green" if entry.runs and entry.runs_done == entry.runs else None)
    return table


def comparison(console: Console, compared: Compared) -> None:
    """Matched points side by side with their differences (* where they differ), unmatched points
    apart, then what else the specs differ in and the counts."""
    result, shown, first, second = compared.result, compared.metrics, compared.first, compared.second
    every = [key for key, _ in [*result.matched, *result.only_a, *result.only_b]]
    columns = [i for i, _ in enumerate(result.fields) if len({key[i] for key in every}) > 1]
    fields = [result.fields[i] for i in columns]
    if result.matched:
        metric_columns = [c for m in shown for c in (f"{m} A", f"{m} B", "B - A")]
        table = _table(f"{first} (A) vs {second} (B): {len(result.matched)} points matched on "
                       f"{', '.join(result.fields) or 'no field (one run each)'}", [*fields, *metric_columns],
                       set(metric_columns))
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
        if rows:
            table = _table(f"{len(rows)} point(s) only in {name} ({label}): the other has no run there",
                           [*fields, *shown], set(shown))
            for key, alone in rows:
                table.add_row(*[cell(str(key[i])) for i in columns],
                              *["-" if alone[m] is None else f"{alone[m]:.4g}" for m in shown])
            console.print(table)
    if result.unknown:
        console.print(f"the runs of one side do not record {', '.join(result.unknown)}, which the other varies: "
                      "their points match on the other fields only", style="yellow", markup=False)
    if compared.spec_differences:
        console.print(f"the specs also differ in: {'; '.join(compared.spec_differences)}", markup=False)
    console.print(f"{result.differing} of {len(result.matched)} matched points differ (marked *); "
                  f"{len(result.only_a)} only in A and {len(result.only_b)} only in B (missing from the other, "
                  "not compared)", markup=False)


def status(console: Console, state: Status, verify: bool) -> None:
    """Per experiment its units per stage (done, running, failed, pending) and compute left, then
    the running jobs' progress."""
    from pl_dsl.engine.progress import duration

    counts = ["units", "done", "running", "failed", "pending", *(["damaged"] if verify else [])]
    for experiment in state.experiments:
        table = _table(f"{experiment.name}: {experiment.runs_complete} of {experiment.runs} runs complete; about "
                       f"{duration(experiment.remaining_seconds)} of CPU-core compute left",
                       ["stage", *counts, "compute left"], {*counts, "compute left"})
        for stage in experiment.stages:
            table.add_row(stage.stage, *[str(getattr(stage, count)) for count in counts],
                          duration(stage.remaining_seconds) if stage.remaining_seconds else "-",
                          style="red" if stage.failed else ("green" if stage.done == stage.units else None))
        console.print(table)
        for failure in experiment.failures:
            console.print(f"failed: {failure}", style="red", markup=False)
        for state_name, count in experiment.not_ok.items():
            console.print(f"{count} runs {NOT_OK_HEADINGS.get(state_name, state_name)} (`pl-dsl results "
                          f"{experiment.name}` lists them)", style="yellow", markup=False)
    if state.jobs:
        table = _table("running jobs", ["stage", "batch", "unit", "step", "loss", "ETA", "host", "last report"])
        now = time.time()
        for job in state.jobs:
            step = f"{job['step']}/{job['steps']}" if job.get("step") else "-"
            loss = f"{job['loss']:.4g}" if job.get("loss") is not None else "-"
            eta = duration(job["eta_seconds"]) if job.get("eta_seconds") is not None else "-"
            age = f"{now - job['updated']:.0f}s ago" + (" (stale: killed or stuck?)" if job["stale"] else "")
            table.add_row(job["stage"], job["batch"], f"{job['done'] + 1}/{job['units']}", step, loss, eta,
                          str(job.get("host", "?")), age, style="red" if job["stale"] else None)
        console.print(table)


def damage(console: Console, damaged: list[str]) -> None:
    """The stored files whose sha256 no longer matches, and how to recompute them."""
    for line in damaged:
        console.print(f"damaged: {line}", style="red", markup=False)
    console.print(f"verified every stored file: {len(damaged)} damaged"
                  + ("; `snakemake --config verify=full ...` recomputes them and what depends on them"
                     if damaged else ""), markup=False)


def removal(console: Console, found: list[tuple[Path, int]], done: bool) -> None:
    """What gc or rm removes (or would), with sizes."""
    for path, size in found:
        console.print(f"{'removed' if done else 'would remove'} {path} ({size / 2**20:.2f} MB)", markup=False)


def doctor(rows: list[tuple[str, str]]) -> Table:
    """What doctor found, one row per item."""
    table = Table(title="pl-dsl doctor", show_header=False)
    table.add_column("what")
    table.add_column("found", overflow="fold")
    for what, found in rows:
        table.add_row(what, found)
    return table


def calibration(console: Console, measured: dict[str, Any], stored: Path) -> None:
    """The training rates doctor --calibrate measured, and where they are stored."""
    for kind, entry in measured.items():
        stacked = (f", {entry['stacked_multiply_adds_per_second'] / 1e9:.1f} G stacked ({entry['stack']} nets)"
                   if "stacked_multiply_adds_per_second" in entry else "")
        console.print(f"calibrated {kind} ({entry.get('device_name', 'one core')}): "
                      f"{entry['multiply_adds_per_second'] / 1e9:.1f} G multiply-adds/s alone{stacked}", markup=False)
    console.print(f"stored in {stored}", markup=False)
