"""The per-run metrics files and the tidy per-experiment CSV (no torch needed)."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import atomic_path, read_json, write_json


def collect(table_plan: dict[str, Any], layout: Layout, table: Path, runs_dir: Path) -> int:
    """Write runs_dir/<run>/metrics.json (plus each stage's run files) and the CSV table from
    the records of every unit of every run; returns the number of runs."""
    tmp_dir = runs_dir.with_name(f".{runs_dir.name}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    names = table_plan["metrics"]
    rows: list[dict[str, Any]] = []
    for run in table_plan["runs"]:
        found: dict[str, Any] = {}
        devices: list[str] = []
        run_dir = tmp_dir / run["id"]
        for stage, key in run["units"].items():
            record = read_json(layout.unit(stage, key) / "record.json")
            found.update(record["metrics"], **{f"time_{stage}": record["seconds"]})
            devices.append(record["device"])
            for name in table_plan["run_files"].get(stage, []):
                run_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(layout.unit(stage, key) / name, run_dir / name)
        metrics = {name: found.get(name) for name in names}
        device = "+".join(dict.fromkeys(devices))
        write_json(run_dir / "metrics.json", {
            "experiment": table_plan["experiment"], "run": run["id"], "varied": run["varied"],
            "metrics": metrics, "device": device, "spec": run["spec"]})
        panels = {"panels": ";".join(run["panels"])} if table_plan["panels"] else {}
        rows.append({"run": run["id"], **run["varied"], **run["resolved"], **panels, **metrics, "device": device})
    shutil.rmtree(runs_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.rename(runs_dir)
    resolved = list(table_plan["runs"][0]["resolved"]) if table_plan["runs"] else []
    columns = ["run", *table_plan["axes"], *resolved, *(["panels"] if table_plan["panels"] else []), *names, "device"]
    with atomic_path(table) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)


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
