"""Exporting an experiment's runs to the trackers researchers already use: an MLflow tracking
store (one MLflow run per pl-dsl run) and TensorBoard event files (one folder per run). Each
run brings its varied fields as parameters, its final metrics, the loss curves of f and g as
step series, its status, its resolved spec, and where and with what it was computed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.store import read_json
from pl_dsl.errors import StageFailure, lookup

# The stages whose units hold a trained network's loss curve, and the series each gives.
LOSS_SERIES = {"train_f": "loss_f", "train_g": "loss_g"}


@dataclass
class RunRecord:
    """One run as the exporters see it."""

    id: str
    varied: dict[str, Any]
    metrics: dict[str, float]
    status: str
    note: str
    spec: dict[str, Any]
    tags: dict[str, str]
    curves: dict[str, list[tuple[int, float]]]


def runs_of(name: str, layout: Layout) -> Iterator[RunRecord]:
    """Every run of an experiment's results folder, with its loss curves from the store."""
    import torch

    folder = layout.runs_dir(name)
    if not folder.is_dir():
        raise StageFailure(f"no results for '{name}' in {layout.root}: run `pl-dsl run {name}` first")
    for path in sorted(folder.glob("*/metrics.json")):
        data = read_json(path)
        curves: dict[str, list[tuple[int, float]]] = {}
        for stage, series in LOSS_SERIES.items():
            key = data.get("units", {}).get(stage)
            model = layout.unit(stage, key) / "model.pt" if key else None
            if model is not None and model.exists():
                stored = torch.load(model, map_location="cpu", weights_only=True)
                curves[series] = [(int(step), float(loss)) for step, loss in stored.get("loss_curve", [])]
        tags = {"pl_dsl.experiment": name, "pl_dsl.run": data["run"], "status": data["status"],
                "device": str(data.get("device", ""))}
        if data.get("note"):
            tags["note"] = str(data["note"])
        for stage, info in data.get("provenance", {}).items():
            for key in ("pl_dsl", "git_commit", "git_dirty", "torch", "host", "device_name"):
                if info.get(key) is not None:
                    tags[f"{stage}.{key}"] = str(info[key])
        metrics = {k: float(v) for k, v in data["metrics"].items() if isinstance(v, (int, float))}
        yield RunRecord(data["run"], data["varied"], metrics, data["status"], str(data.get("note", "")),
                        data["spec"], tags, curves)


def export_mlflow(name: str, layout: Layout, uri: str) -> int:
    """One MLflow run per pl-dsl run in the experiment `name` (replacing runs exported before)."""
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a plain folder is what `--uri DIR` asks for
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise StageFailure("MLflow is not installed: pip install 'pl-dsl[mlflow]'") from None
    tracking = uri if "://" in uri or uri.startswith("sqlite:") else Path(uri).resolve().as_uri()
    client = MlflowClient(tracking_uri=tracking)
    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    count = 0
    for run in runs_of(name, layout):
        for old in client.search_runs([experiment_id], f"tags.`pl_dsl.run` = '{run.id}'"):
            client.delete_run(old.info.run_id)
        created = client.create_run(experiment_id, run_name=run.id, tags=run.tags)
        run_id = created.info.run_id
        params = [Param(key, json.dumps(value) if not isinstance(value, str) else value)
                  for key, value in run.varied.items()]
        metrics = [Metric(key, value, 0, 0) for key, value in run.metrics.items()]
        metrics += [Metric(series, loss, 0, step) for series, points in run.curves.items() for step, loss in points]
        client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag("mlflow.runName", run.id)])
        client.log_text(run_id, json.dumps(run.spec, indent=1), "spec.json")
        client.set_terminated(run_id, "FINISHED" if run.status == "ok" else "FAILED")
        count += 1
    return count


def export_tensorboard(name: str, layout: Layout, uri: str) -> int:
    """TensorBoard event files: <uri>/<experiment>/<run>/ with the loss curves as scalars and the
    varied fields and final metrics as HParams."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise StageFailure("TensorBoard is not installed: pip install 'pl-dsl[tensorboard]'") from None
    count = 0
    for run in runs_of(name, layout):
        folder = Path(uri) / name / run.id
        for old in folder.glob("events.out.tfevents.*"):  # replace what was exported before
            old.unlink()
        with SummaryWriter(log_dir=str(folder)) as writer:
            for series, points in run.curves.items():
                for step, loss in points:
                    writer.add_scalar(f"loss/{series.removeprefix('loss_')}", loss, step)
            hparams = {key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value)
                       for key, value in run.varied.items()}
            writer.add_hparams(hparams, {f"final/{key}": value for key, value in run.metrics.items()}, run_name=".")
            writer.add_text("spec", f"```\n{json.dumps(run.spec, indent=1)}\n```")
            writer.add_text("status", f"{run.status} {run.note}".strip())
        count += 1
    return count


EXPORTERS: dict[str, Callable[[str, Layout, str], int]] = {"mlflow": export_mlflow, "tensorboard": export_tensorboard}
DEFAULT_URIS = {"mlflow": "mlruns", "tensorboard": "tensorboard"}


def export(name: str, layout: Layout, to: str, uri: str | None) -> tuple[int, str]:
    """Export an experiment's runs to a tracker; returns how many runs and where they went."""
    where = uri or DEFAULT_URIS[to]
    return lookup(EXPORTERS, to, "tracker")(name, layout, where), where
