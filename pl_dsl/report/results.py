"""The per-run metrics files and the tidy per-experiment CSV (no torch needed)."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import DIVERGED, NONFINITE, OK, STATUS_ORDER, atomic_path, read_record, write_json

# Columns of the table after the metrics: whether the run's result is ok, non-finite (computed as
# the authors' code computes it, see engine.store) or diverged, and why.
STATUS_COLUMNS = ("status", "note")


def describe_run(run: dict[str, Any]) -> str:
    """A run for people: its id and swept values."""
    values = ", ".join(f"{axis}={value}" for axis, value in run["varied"].items())
    return f"run {run['id']}" + (f" ({values})" if values else "")


def collect(table_plan: dict[str, Any], layout: Layout, table: Path, runs_dir: Path) -> tuple[int, list[str]]:
    """Write runs_dir/<run>/metrics.json (plus each stage's run files) and the CSV table from
    the records of every unit of every run. A run with a diverged unit gets its row with status
    `diverged`, the note saying where, and no metrics; one with a non-finite unit (and none
    diverged) the status `non-finite`, the notes, and its metrics. Returns the number of runs and
    a line per run that is not ok."""
    tmp_dir = runs_dir.with_name(f".{runs_dir.name}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    names = table_plan["metrics"]
    rows: list[dict[str, Any]] = []
    diverged: list[str] = []
    for run in table_plan["runs"]:
        found: dict[str, Any] = {}
        devices: list[str] = []
        provenance: dict[str, Any] = {}
        status, notes = OK, dict[str, None]()  # every unit's note, once, in stage order
        run_dir = tmp_dir / run["id"]
        for stage, key in run["units"].items():
            record = read_record(layout.unit(stage, key))
            found.update(record["metrics"], **{f"time_{stage}": record["seconds"]})
            devices.append(record["device"])
            if "provenance" in record:
                provenance[stage] = record["provenance"]
            if record["status"] != OK:
                status = max(status, record["status"], key=STATUS_ORDER.index)
                notes.setdefault(str(record.get("note", "")))
            if record["status"] == DIVERGED:
                continue
            for name in table_plan["run_files"].get(stage, []):
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(layout.unit(stage, key) / name, run_dir / name)
        note = "; ".join(notes)
        if status != OK:
            diverged.append(f"{describe_run(run)}: {note}")
        metrics = {name: found.get(name) for name in names}
        device = "+".join(dict.fromkeys(devices))
        times = [p[k] for p in provenance.values() for k in ("started", "finished")]
        write_json(run_dir / "metrics.json", {
            "experiment": table_plan["experiment"], "run": run["id"], "varied": run["varied"], "status": status,
            "note": note, "metrics": metrics, "device": device, "spec": run["spec"], "units": run["units"],
            "started": min(times, default=None), "finished": max(times, default=None), "provenance": provenance})
        panels = {"panels": ";".join(run["panels"])} if table_plan["panels"] else {}
        rows.append({"run": run["id"], **run["varied"], **run["resolved"], **panels, **metrics,
                     "status": status, "note": note, "device": device})
    shutil.rmtree(runs_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.rename(runs_dir)
    resolved = list(table_plan["runs"][0]["resolved"]) if table_plan["runs"] else []
    columns = ["run", *table_plan["axes"], *resolved, *(["panels"] if table_plan["panels"] else []), *names,
               *STATUS_COLUMNS, "device"]
    with atomic_path(table) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return len(rows), diverged


def nonfinite_note(rows: list[dict[str, str]]) -> str:
    """How many of these runs went non-finite as the authors' code computes them ('' when none)."""
    count = sum(row.get("status") == NONFINITE for row in rows)
    return (f"{count} of {len(rows)} runs non-finite (as their code: a NaN output scores as wrong and agrees with "
            "nothing, as their script scores it)") if count else ""


def read_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# What a results table shows by default: the paper's three curves and the attack's success.
DEFAULT_METRICS = ("f_train_acc", "g_clean_acc", "agreement", "attack_success")


def table_columns(rows: list[dict[str, str]], known: dict[str, str] | set[str],
                  metrics: list[str]) -> tuple[list[str], list[str]]:
    """(swept columns, metric columns shown) of a results table: the metrics asked for, else the
    default ones the table has."""
    shown = metrics or [m for m in DEFAULT_METRICS if not rows or m in rows[0]]
    axes = [c for c in rows[0] if c not in known and c not in ("run", "device", "panels", *STATUS_COLUMNS)] if rows else []
    return axes, shown


def over_seeds_rows(rows: list[dict[str, str]], keys: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """One row per point (the values of `keys`, in first-seen order): how many seeds, and each
    metric's mean, sample standard deviation (n - 1; '' for one seed), median, min and max over
    them (`<metric>_mean`, ...; '' where no run has it)."""
    from statistics import fmean, median, stdev

    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    points = []
    for point, members in groups.items():
        summary: dict[str, Any] = {**dict(zip(keys, point)), "seeds": len(members)}
        for metric in metrics:
            values = [float(m[metric]) for m in members if m.get(metric)]
            summary.update({f"{metric}_mean": fmean(values) if values else "",
                            f"{metric}_std": stdev(values) if len(values) > 1 else "",
                            f"{metric}_median": median(values) if values else "",
                            f"{metric}_min": min(values, default=""), f"{metric}_max": max(values, default="")})
        points.append(summary)
    return points


# How a point over seeds is written in a table for a paper (`pl-dsl results --stat`), and the line
# under the table that says so ({n}: the seeds per point).
STATISTICS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "mean": lambda p, m: f"{p[f'{m}_mean']:.3f}" + (f" ± {p[f'{m}_std']:.3f}" if p[f"{m}_std"] != "" else ""),
    "median": lambda p, m: f"{p[f'{m}_median']:.3f} [{p[f'{m}_min']:.3f}, {p[f'{m}_max']:.3f}]",
}
STATISTIC_NOTES = {"mean": "mean ± s.d. (sample standard deviation, n − 1) over n = {n} seeds",
                   "median": "median [min, max] over n = {n} seeds"}


def statistic_note(points: list[dict[str, Any]], statistic: str) -> str:
    """What a table over seeds shows, with n: 'mean ± s.d. (...) over n = 3 seeds' (or n = 2–3)."""
    counts = sorted({int(p["seeds"]) for p in points}) or [0]
    n = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
    return STATISTIC_NOTES[statistic].format(n=n)
# Table formats of `pl-dsl results --format` (tabulate's names): GitHub markdown, LaTeX with booktabs rules.
TABLE_FORMATS = {"markdown": "github", "latex": "latex_booktabs"}


def formatted(rows: list[dict[str, Any]], fmt: str, numeric: Collection[str] = (), note: str = "") -> str:
    """Rows (all with the same columns) as csv, markdown or LaTeX (booktabs) text; the `numeric`
    columns right-aligned, and `note` (what the numbers are) under the table: a line in markdown,
    a last row spanning the table in LaTeX."""
    if fmt == "csv":
        return as_text(rows)
    from typing import cast

    from tabulate import tabulate

    table = cast(Callable[..., str], tabulate)  # tabulate ships no type hints
    columns = list(rows[0]) if rows else []
    text = table([[row[c] for c in columns] for row in rows], headers=columns, tablefmt=TABLE_FORMATS[fmt],
                 disable_numparse=True, colalign=["right" if c in numeric else "left" for c in columns] or None)
    if note and fmt == "latex":
        end = "\\end{tabular}"
        text = text.replace(end, f"\\multicolumn{{{len(columns)}}}{{l}}{{\\footnotesize {note}}} \\\\\n{end}")
    elif note:
        text += f"\n\n{note}"
    return text + "\n"


def paper_rows(points: list[dict[str, Any]], keys: list[str], metrics: list[str], statistic: str) -> list[dict[str, Any]]:
    """Points over seeds as a paper shows them: the swept values, the seeds, each metric as
    mean ± std or median [min, max] ('-' where no run has it)."""
    write = STATISTICS[statistic]
    return [{**{k: p[k] for k in keys}, "seeds": p["seeds"],
             **{m: write(p, m) if p[f"{m}_mean"] != "" else "-" for m in metrics}} for p in points]


def as_text(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV text (for piping `pl-dsl results --csv`)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
