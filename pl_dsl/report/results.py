"""The per-run metrics files and the tidy per-experiment CSV (no torch needed)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import OK, atomic_path, read_record, write_json

# Columns of the table after the metrics: whether the run's result is ok or diverged, and why.
STATUS_COLUMNS = ("status", "note")


def describe_run(run: dict[str, Any]) -> str:
    """A run for people: its id and swept values."""
    values = ", ".join(f"{axis}={value}" for axis, value in run["varied"].items())
    return f"run {run['id']}" + (f" ({values})" if values else "")


def collect(table_plan: dict[str, Any], layout: Layout, table: Path, runs_dir: Path) -> tuple[int, list[str]]:
    """Write runs_dir/<run>/metrics.json (plus each stage's run files) and the CSV table from
    the records of every unit of every run. A run with a diverged unit gets its row with status
    `diverged`, the note saying where, and no metrics. Returns the number of runs and a line per
    diverged run."""
    tmp_dir = runs_dir.with_name(f".{runs_dir.name}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    names = table_plan["metrics"]
    rows: list[dict[str, Any]] = []
    diverged: list[str] = []
    for run in table_plan["runs"]:
        found: dict[str, Any] = {}
        devices: list[str] = []
        provenance: dict[str, Any] = {}
        status, note = OK, ""
        run_dir = tmp_dir / run["id"]
        for stage, key in run["units"].items():
            record = read_record(layout.unit(stage, key))
            found.update(record["metrics"], **{f"time_{stage}": record["seconds"]})
            devices.append(record["device"])
            if "provenance" in record:
                provenance[stage] = record["provenance"]
            if record["status"] != OK:
                status, note = record["status"], note or str(record.get("note", ""))
                continue
            for name in table_plan["run_files"].get(stage, []):
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(layout.unit(stage, key) / name, run_dir / name)
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


def read_table(path: str | Path) -> list[dict[str, str]]:
    """Rows of a results CSV as dicts of strings."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_text(rows: list[dict[str, str]]) -> str:
    """Rows as CSV text (for piping `pl-dsl results --csv`)."""
    if not rows:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
