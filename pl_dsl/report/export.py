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
from pl_dsl.engine.store import DIVERGED, read_json
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
    started: float | None = None  # epoch seconds: when its first unit started, and its last finished
    finished: float | None = None
    spans: dict[str, tuple[float, float]] | None = None  # per loss series, its training's start and finish

    @property
    def title(self) -> str:
        """What the run is, for a tracker's run name: its swept values by their short names."""
        short = [path.split(".")[-1] for path in self.varied]
        names = [name if short.count(name) == 1 else path for name, path in zip(short, self.varied)]
        return " ".join(f"{name}={value}" for name, value in zip(names, self.varied.values())) or self.id

    def step_time(self, series: str, step: int) -> float | None:
        """When a loss series' step was computed (epoch seconds), spread evenly over its training:
        the store keeps the training's start and finish, not each step's time."""
        if not self.spans or series not in self.spans or not self.curves.get(series):
            return self.finished
        start, end = self.spans[series]
        last = max(s for s, _ in self.curves[series]) or 1
        return start + (end - start) * (step + 1) / (last + 1)


def runs_of(name: str, layout: Layout) -> Iterator[RunRecord]:
    """Every run of an experiment's results folder, with its loss curves from the store."""
    import torch

    folder = layout.runs_dir(name)
    if not folder.is_dir():
        raise StageFailure(f"no results for '{name}' in {layout.root}: run `pl-dsl run {name}` first")
    try:
        spec_hash = str(read_json(layout.source(name)).get("sha256", ""))
    except (OSError, ValueError):
        spec_hash = ""
    for path in sorted(folder.glob("*/metrics.json")):
        data = read_json(path)
        curves: dict[str, list[tuple[int, float]]] = {}
        provenance = data.get("provenance", {})
        spans = {series: (provenance[stage]["started"], provenance[stage]["finished"]) for stage, series in
                 LOSS_SERIES.items() if "started" in provenance.get(stage, {}) and "finished" in provenance[stage]}
        for stage, series in LOSS_SERIES.items():
            key = data.get("units", {}).get(stage)
            model = layout.unit(stage, key) / "model.pt" if key else None
            if model is not None and model.exists():
                stored = torch.load(model, map_location="cpu", weights_only=True)
                curves[series] = [(int(step), float(loss)) for step, loss in stored.get("loss_curve", [])]
        tags = {"pl_dsl.experiment": name, "pl_dsl.run": data["run"], "status": data["status"],
                "device": str(data.get("device", "")), "pl_dsl.spec_sha256": spec_hash}
        if data.get("note"):
            tags["note"] = str(data["note"])
        for stage, info in data.get("provenance", {}).items():
            for key in ("pl_dsl", "git_commit", "git_dirty", "torch", "host", "device_name"):
                if info.get(key) is not None:
                    tags[f"{stage}.{key}"] = str(info[key])
        metrics = {k: float(v) for k, v in data["metrics"].items() if isinstance(v, (int, float))}
        yield RunRecord(data["run"], data["varied"], metrics, data["status"], str(data.get("note", "")),
                        data["spec"], tags, curves, data.get("started"), data.get("finished"), spans)


def parameters(run: RunRecord) -> dict[str, str]:
    """Every field of a run's resolved spec under its dotted name (`network.width`, `data.kind`,
    ...), and each swept field as the spec writes it (`attack.eps_per_coord`), as text."""
    flat = {**_leaves(run.spec), **run.varied}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in flat.items()}


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): value}


# MLflow takes at most this many parameters in one batch.
PARAMS_PER_BATCH = 100


def export_mlflow(name: str, layout: Layout, uri: str | None) -> tuple[int, str]:
    """One MLflow run per pl-dsl run in the experiment `name` (replacing runs exported before),
    to `uri`, or where MLflow reads by default ($MLFLOW_TRACKING_URI, else its own default)."""
    if uri is not None and "://" not in uri and not uri.startswith("sqlite:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # a plain folder is what `--uri DIR` asks for
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise StageFailure("MLflow is not installed: pip install 'pl-dsl[mlflow]'") from None
    from mlflow.exceptions import MlflowException

    tracking = None if uri is None else uri if "://" in uri or uri.startswith("sqlite:") else Path(uri).resolve().as_uri()
    try:
        return _to_mlflow(MlflowClient(tracking_uri=tracking), name, layout)
    except MlflowException as exc:
        raise StageFailure(f"MLflow refused the export to {tracking or 'its default store'}: {exc.message}") from None


def _ms(seconds: float | None) -> int | None:
    """Epoch seconds as MLflow's epoch milliseconds."""
    return None if seconds is None else int(seconds * 1000)


def _to_mlflow(client: Any, name: str, layout: Layout) -> tuple[int, str]:
    from mlflow.entities import Metric, Param, RunTag

    found = client.get_experiment_by_name(name)
    experiment_id = found.experiment_id if found else client.create_experiment(name)
    count = 0
    for run in runs_of(name, layout):
        for old in client.search_runs([experiment_id], f"tags.`pl_dsl.run` = '{run.id}'"):
            client.delete_run(old.info.run_id)
        created = client.create_run(experiment_id, start_time=_ms(run.started), run_name=run.title, tags=run.tags)
        run_id = created.info.run_id
        params = [Param(key, value) for key, value in parameters(run).items()]
        metrics = [Metric(key, value, _ms(run.finished) or 0, 0) for key, value in run.metrics.items()]
        metrics += [Metric(series, loss, _ms(run.step_time(series, step)) or 0, step)
                    for series, points in run.curves.items() for step, loss in points]
        client.log_batch(run_id, metrics=metrics, params=params[:PARAMS_PER_BATCH],
                         tags=[RunTag("mlflow.runName", run.title)])
        for start in range(PARAMS_PER_BATCH, len(params), PARAMS_PER_BATCH):
            client.log_batch(run_id, params=params[start:start + PARAMS_PER_BATCH])
        client.log_text(run_id, json.dumps(run.spec, indent=1), "spec.json")
        client.set_terminated(run_id, "FAILED" if run.status == DIVERGED else "FINISHED",  # the status tag says non-finite
                              end_time=_ms(run.finished))
        count += 1
    return count, client.tracking_uri


def export_tensorboard(name: str, layout: Layout, uri: str | None) -> tuple[int, str]:
    """TensorBoard event files: <uri>/<experiment>/<run>/ with the loss curves as scalars and the
    varied fields and final metrics as HParams."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise StageFailure("TensorBoard is not installed: pip install 'pl-dsl[tensorboard]'") from None
    uri = uri or "tensorboard"
    count = 0
    for run in runs_of(name, layout):
        folder = Path(uri) / name / run.id
        for old in folder.glob("events.out.tfevents.*"):  # replace what was exported before
            old.unlink()
        with SummaryWriter(log_dir=str(folder)) as writer:
            for series, points in run.curves.items():
                for step, loss in points:
                    writer.add_scalar(f"loss/{series.removeprefix('loss_')}", loss, step, walltime=run.step_time(series, step))
            hparams: dict[str, Any] = {**parameters(run), **{key: value for key, value in run.varied.items()
                                                            if isinstance(value, (int, float, str, bool))}}
            writer.add_hparams(hparams, {f"final/{key}": value for key, value in run.metrics.items()}, run_name=".")
            writer.add_text("spec", f"```\n{json.dumps(run.spec, indent=1)}\n```")
            writer.add_text("status", f"{run.status} {run.note}".strip())
        count += 1
    return count, uri


EXPORTERS: dict[str, Callable[[str, Layout, str | None], tuple[int, str]]] = {
    "mlflow": export_mlflow, "tensorboard": export_tensorboard}


def export(name: str, layout: Layout, to: str, uri: str | None) -> tuple[int, str]:
    """Export an experiment's runs to a tracker (to `uri`, else the tracker's default place);
    returns how many runs and where they went."""
    return lookup(EXPORTERS, to, "tracker")(name, layout, uri)
