"""The researcher's loop through the real CLI: `pl-dsl run` with overrides and multirun axes
(derived experiments that never touch the base), provenance in every run, exports read back
by MLflow's and TensorBoard's own readers, `pl-dsl list` and `pl-dsl compare`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_cli, write_spec

TINY = (REPO / "tests/specs/valid/tiny.yaml").read_text()


def rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A base run and a derived one (two overrides and a multirun axis) in one folder."""
    workdir = tmp_path_factory.mktemp("run")
    spec = write_spec(workdir, "tiny", TINY)
    base = run_cli("run", str(spec), "--cores", "2", cwd=workdir)
    assert base.returncode == 0, base.stderr[-2000:]
    derived = run_cli("run", str(spec), "training.steps=20", "attack.targets=random", "-m", "network.width=10,30",
                      "--cores", "2", cwd=workdir)
    assert derived.returncode == 0, derived.stderr[-2000:]
    (workdir / "derived.txt").write_text(derived.stdout)
    (workdir / "derived-notes.txt").write_text(derived.stderr)
    return workdir


def derived_name(workdir: Path) -> str:
    return next(p.name for p in (workdir / "results").iterdir() if p.name.startswith("tiny+"))


def test_overrides_make_a_derived_experiment_and_leave_the_base_alone(ran: Path) -> None:
    base = rows(ran / "results/tiny/results.csv")
    assert len(base) == 6 and {r["attack.targets"] if "attack.targets" in r else "balanced" for r in base} == {"balanced"}
    name = derived_name(ran)
    assert len(name) == len("tiny+") + 8  # its changes are too long to spell out in the name
    derived = rows(ran / f"results/{name}/results.csv")
    assert len(derived) == 12  # 3 eps x 2 seeds x the 2 widths of -m
    assert {r["network.width"] for r in derived} == {"10", "30"}
    saved = (ran / f"results/{name}/spec.yaml").read_text()
    assert "training.steps=20 attack.targets=random -m network.width=10,30" in saved.splitlines()[0]
    metrics = json.loads(next((ran / f"results/{name}/runs").glob("*/metrics.json")).read_text())
    assert metrics["spec"]["train_f"]["steps"] == 20 and metrics["spec"]["attack"]["targets"] == "random"
    shown = (ran / "derived.txt").read_text()
    assert f"running {name}" in shown and "runs 12/12 done" in shown and "g_clean_acc" in shown
    assert "Building DAG" not in shown  # Snakemake's own output went to the log file


def test_each_run_records_how_and_where_it_was_computed(ran: Path) -> None:
    metrics = json.loads(next((ran / "results/tiny/runs").glob("*/metrics.json")).read_text())
    import torch

    assert metrics["started"] <= metrics["finished"] and set(metrics["units"]) == set(metrics["provenance"])
    info = metrics["provenance"]["train_f"]
    assert info["torch"] == torch.__version__ and info["host"] and info["device_name"]
    assert len(info["git_commit"]) == 40 and isinstance(info["git_dirty"], bool)  # run from the checkout


def test_argument_mistakes_name_the_argument(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    typo = run_cli("run", str(spec), "training.learning_rate=0.1", cwd=tmp_path)
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert "training.learning_rate=0.1: 'training.learning_rate' is not a field of the spec " \
           "(did you mean 'training.lr'?)" in typo.stderr
    bad = run_cli("run", str(spec), "training.lr=fast", "network.width=0", cwd=tmp_path)
    assert bad.returncode == 2
    assert "argument training.lr=fast: expected number, got str 'fast'" in bad.stderr
    assert "argument network.width=0: 0 is less than the minimum of 1" in bad.stderr
    unknown = run_cli("run", "tinny", cwd=tmp_path)
    assert unknown.returncode == 2 and "no experiment 'tinny'" in unknown.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_an_override_that_contradicts_the_spec_is_told_at_the_argument_and_tilde_removes(tmp_path: Path) -> None:
    """eps_per_coord over a spec's eps: the error names the argument (not a generated file), and
    ~attack.eps removes the spec's eps, as Hydra users write it."""
    spec = write_spec(tmp_path, "e", "name: e\ndata: {kind: gauss, dim: 10, n_train: 20}\ntraining: {steps: 2}\n"
                                     "attack: {eps: 0.1}\n")
    both = run_cli("run", str(spec), "attack.eps_per_coord=0.001", "-n", cwd=tmp_path)
    assert both.returncode == 2 and both.stderr.startswith("argument attack.eps_per_coord=0.001: attack: give either "
                                                           "eps or eps_per_coord, not both"), both.stderr
    assert "~attack.eps" in both.stderr and "spec.yaml" not in both.stderr
    removed = run_cli("run", str(spec), "~attack.eps", "attack.eps_per_coord=0.001", "--cores", "1", cwd=tmp_path)
    assert removed.returncode == 0, removed.stderr[-2000:]
    (metrics,) = (tmp_path / "results").glob("e+no-eps+eps_per_coord-0.001+*/runs/*/metrics.json")  # readable
    assert json.loads(metrics.read_text())["spec"]["attack"]["eps"] == pytest.approx(0.001 * 10 ** 0.5)
    missing = run_cli("run", str(spec), "~network.width", "-n", cwd=tmp_path)
    assert missing.returncode == 2 and "gives no network.width to remove" in missing.stderr


def test_a_dry_run_and_snakemake_arguments_pass_through(ran: Path) -> None:
    dry = run_cli("run", str(ran / "tiny.yaml"), "-n", "--cores", "1", cwd=ran)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    passed = run_cli("run", str(ran / "tiny.yaml"), "--cores", "1", "--", "--dry-run", "--quiet", cwd=ran)
    assert passed.returncode == 0 and "runs 6/6 done" in passed.stdout
    # Snakemake keeps only its last --config: the user's items join pl-dsl's (the spec stays chosen).
    stacked = run_cli("run", str(ran / "tiny.yaml"), "--cores", "1", "--", "--config", "stack=on", "--dry-run",
                      cwd=ran)
    assert stacked.returncode == 0 and "runs 6/6 done" in stacked.stdout, stacked.stderr[-2000:]
    wrong = run_cli("run", str(ran / "tiny.yaml"), "--cores", "1", "--", "--config", "stack=sometimes", cwd=ran)
    assert wrong.returncode != 0 and "stack=sometimes" in wrong.stdout + wrong.stderr


def test_a_dry_run_of_a_wrong_spec_shows_only_its_errors_and_stops_snakemake(tmp_path: Path) -> None:
    """Snakemake starts planning before the spec is checked: a wrong spec stops it, and only
    pl-dsl's located error is shown (not Snakemake's report of the same mistake)."""
    spec = write_spec(tmp_path, "typo", TINY.replace("kind: shifted_gauss", "kind: shifted_gaus"))
    dry = run_cli("run", str(spec), "-n", "--cores", "1", cwd=tmp_path)
    assert dry.returncode == 1 and "typo.yaml:" in dry.stderr and "data.kind: 'shifted_gaus'" in dry.stderr, dry.stderr
    assert dry.stdout == "" and dry.stderr.count("'shifted_gaus'") == 1 and "Traceback" not in dry.stderr
    alive = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert alive.stdout == "", alive.stdout


def test_a_derived_experiment_says_what_it_overrides_everywhere(ran: Path) -> None:
    """run, results and list show the base spec and the arguments a derived name stands for."""
    name = derived_name(ran)
    said = f"{name} is tiny.yaml + training.steps=20 attack.targets=random -m network.width=10,30"
    assert said in (ran / "derived.txt").read_text()
    assert said in run_cli("results", name, cwd=ran).stdout
    listed = run_cli("list", cwd=ran)
    assert "tiny.yaml + training.steps=20" in listed.stdout.replace("\n", ""), listed.stdout


def test_a_multirun_axis_is_shown_never_reduced_silently(ran: Path) -> None:
    """-m adding an axis: the plot that does not show it draws it as its series (its old series,
    the seeds, kept as a band), and the run says so; -m of a swept field says it replaces that sweep."""
    name = derived_name(ran)
    plot = yaml.safe_load((ran / f"results/{name}/spec.yaml").read_text())["plots"][0]
    assert plot["series"] == "network.width" and plot["reduce"]["seed"] == "band"
    assert "-m network.width=10,30: adds the axis network.width (plot by_eps: series network.width, seed as a band)" \
        in (ran / "derived-notes.txt").read_text()
    replaced = run_cli("run", str(ran / "tiny.yaml"), "-m", "attack.eps_per_coord=0.01", "-n", "--cores", "1", cwd=ran)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert "-m attack.eps_per_coord=0.01: replaces the spec's sweep over attack.eps_per_coord ([0.01, 0.02, 0.05])" \
        in replaced.stderr


def test_a_dry_run_of_a_derived_experiment_leaves_nothing_in_results(ran: Path) -> None:
    """Its derived spec goes to a folder of its own, so no results/<name>/ is left for list,
    status, results and rm to stumble on."""
    dry = run_cli("run", str(ran / "tiny.yaml"), "-m", "network.width=3,5", "--name", "dry-only", "-n", "--cores", "1",
                  cwd=ran)
    assert dry.returncode == 0 and "to compute" in dry.stdout, dry.stderr[-2000:]
    assert not (ran / "results" / "dry-only").exists()
    assert "dry-only" not in run_cli("list", cwd=ran).stdout


def test_list_and_compare(ran: Path) -> None:
    listed = run_cli("list", cwd=ran)
    name = derived_name(ran)
    assert listed.returncode == 0 and "tiny " in listed.stdout and name in listed.stdout
    assert "6/6" in listed.stdout and "12/12" in listed.stdout and str(ran / "tiny.yaml") in listed.stdout
    compared = run_cli("compare", "tiny", name, "-m", "g_clean_acc", cwd=ran)
    assert compared.returncode == 0, compared.stderr
    # tiny holds the width at 20, the derived one sweeps 10 and 30: no point matches, both are shown
    assert f"no point of tiny matches a point of {name} on attack.eps_per_coord, seed" in compared.stdout
    assert "network.width" in compared.stdout
    assert "the specs also differ in:" in compared.stdout and "attack.targets: balanced vs random" in compared.stdout
    assert "0 of 0 matched points differ (marked *); 6 only in A and 12 only in B" in compared.stdout
    wrong = run_cli("compare", "tiny", "tiyn", cwd=ran)
    assert wrong.returncode == 2 and "did you mean 'tiny'" in wrong.stderr


def test_mlflow_export_reads_back(ran: Path) -> None:
    import os

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    from mlflow.tracking import MlflowClient

    exported = run_cli("export", "tiny", "--to", "mlflow", "--uri", str(ran / "mlruns"), cwd=ran)
    assert exported.returncode == 0, exported.stderr[-2000:]
    assert "exported 6 runs of tiny to mlflow" in exported.stdout
    client = MlflowClient(tracking_uri=(ran / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tiny")
    found = client.search_runs([experiment.experiment_id])
    assert len(found) == 6
    table = {r["run"]: r for r in rows(ran / "results/tiny/results.csv")}
    for mlrun in found:
        row = table[mlrun.data.tags["pl_dsl.run"]]
        assert mlrun.data.tags["status"] == "ok" and mlrun.info.status == "FINISHED"
        assert mlrun.data.params["seed"] == row["seed"]
        assert mlrun.data.metrics["g_clean_acc"] == pytest.approx(float(row["g_clean_acc"]))
        history = client.get_metric_history(mlrun.info.run_id, "loss_g")
        assert [m.step for m in history][:2] == [0, 1] and len(history) == 40  # T_g = 40: every step kept
        # the run's own times, not the export's: its start and end, and its steps' times within g's training
        recorded = json.loads((ran / "results/tiny/runs" / row["run"] / "metrics.json").read_text())
        assert mlrun.info.start_time == int(recorded["started"] * 1000)
        assert mlrun.info.end_time == int(recorded["finished"] * 1000)
        g_training = recorded["provenance"]["train_g"]
        times = [m.timestamp for m in history]
        assert times == sorted(times) and times[0] > 0
        assert int(g_training["started"] * 1000) <= times[0] and times[-1] <= int(g_training["finished"] * 1000) + 1
        assert mlrun.info.run_name == f"eps_per_coord={row['attack.eps_per_coord']} seed={row['seed']}"
        artifact = client.download_artifacts(mlrun.info.run_id, "spec.json", str(ran / "dl"))
        assert json.loads(Path(artifact).read_text())["train_g"]["steps"] == 40
    again = run_cli("export", "tiny", "--to", "mlflow", "--uri", str(ran / "mlruns"), cwd=ran)
    assert again.returncode == 0 and len(client.search_runs([experiment.experiment_id])) == 6  # replaced


def test_tensorboard_export_reads_back(ran: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exported = run_cli("export", "tiny", "--to", "tensorboard", "--uri", str(ran / "tb"), cwd=ran)
    assert exported.returncode == 0, exported.stderr[-2000:]
    folders = sorted((ran / "tb/tiny").iterdir())
    assert len(folders) == 6
    events = EventAccumulator(str(folders[0]), size_guidance={"scalars": 0})
    events.Reload()
    assert len(events.Scalars("loss/f")) == 30 and len(events.Scalars("loss/g")) == 40
    assert "final/g_clean_acc" in events.Tags()["scalars"]
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")


def test_a_missing_tracker_library_is_a_clear_message(ran: Path) -> None:
    code = ("import sys; sys.modules['mlflow'] = None; sys.modules['mlflow.entities'] = None; "
            "sys.modules['mlflow.tracking'] = None; from pl_dsl.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code, "export", "tiny", "--to", "mlflow"], cwd=ran,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "MLflow is not installed: pip install 'pl-dsl[mlflow]'" in result.stderr


READ_BACK = """
import json, mlflow
runs = mlflow.search_runs(experiment_names=["tiny"], output_format="list")
print(json.dumps([{"params": r.data.params, "tags": r.data.tags, "metrics": r.data.metrics} for r in runs]))
"""


def test_mlflow_export_lands_where_mlflow_reads_by_default(ran: Path, tmp_path: Path) -> None:
    """No --uri, no MLflow settings: `mlflow.search_runs()` in the same folder finds every run,
    with every field of its resolved spec as a param, and a second export replaces the first."""
    import os
    import shutil

    shutil.copytree(ran / "results", tmp_path / "results")  # a folder with no MLflow store yet
    ran = tmp_path
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    for _ in range(2):
        exported = subprocess.run([sys.executable, "-m", "pl_dsl", "export", "tiny", "--to", "mlflow"], cwd=ran,
                                  capture_output=True, text=True, env=clean)
        assert exported.returncode == 0, exported.stderr[-2000:]
        assert "to mlflow at sqlite:///" in exported.stdout and f"{ran / 'mlflow.db'}".lstrip("/") in exported.stdout
    read = subprocess.run([sys.executable, "-c", READ_BACK], cwd=ran, capture_output=True, text=True, env=clean)
    assert read.returncode == 0, read.stderr[-2000:]
    found = json.loads(read.stdout.strip().splitlines()[-1])
    assert len(found) == 6  # exported twice, not duplicated
    table = {r["run"]: r for r in rows(ran / "results/tiny/results.csv")}
    source = json.loads((ran / "results/tiny/source.json").read_text())
    for run in found:
        params, tags = run["params"], run["tags"]
        assert params["network.width"] == "20" and params["data.kind"] == "shifted_gauss"
        assert params["train_g.steps"] == "40" and params["attack.targets"] == "balanced"
        assert params["attack.eps_per_coord"] == table[tags["pl_dsl.run"]]["attack.eps_per_coord"]
        assert tags["pl_dsl.experiment"] == "tiny" and tags["pl_dsl.spec_sha256"] == source["sha256"]
        assert run["metrics"]["g_clean_acc"] == pytest.approx(float(table[tags["pl_dsl.run"]]["g_clean_acc"]))


def test_mlflow_ui_opens_the_export_and_serves_its_runs(ran: Path, tmp_path: Path) -> None:
    """The environment `make` builds runs `mlflow ui` (the full MLflow): started on 127.0.0.1 in a
    folder where `pl-dsl export` wrote its default store, it serves the runs over its REST API."""
    import os
    import shutil
    import socket
    import time
    import urllib.request

    shutil.copytree(ran / "results", tmp_path / "results")
    clean = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
    exported = subprocess.run([sys.executable, "-m", "pl_dsl", "export", "tiny", "--to", "mlflow"], cwd=tmp_path,
                              capture_output=True, text=True, env=clean)
    assert exported.returncode == 0, exported.stderr[-2000:]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).with_name("mlflow")
    log = tmp_path / "mlflow-ui.log"
    # One server process instead of mlflow's default four: each imports mlflow (about 10 s on 2 cores)
    with log.open("w") as output:
        server = subprocess.Popen([str(mlflow), "ui", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                                   "--backend-store-uri", "sqlite:///mlflow.db"], cwd=tmp_path, env=clean,
                                  stdout=output, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline, experiment = time.monotonic() + 90, None
        while experiment is None and time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"{api}/experiments/get-by-name?experiment_name=tiny", timeout=5) as reply:
                    experiment = json.loads(reply.read())["experiment"]
            except OSError:
                time.sleep(0.5)
        assert experiment is not None, log.read_text()[-3000:]
        search = urllib.request.Request(f"{api}/runs/search", method="POST",
                                        data=json.dumps({"experiment_ids": [experiment["experiment_id"]]}).encode(),
                                        headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(search, timeout=10) as reply:
            runs = json.loads(reply.read())["runs"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert len(runs) == 6
    table = {r["run"]: r for r in rows(ran / "results/tiny/results.csv")}
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
        metrics = {metric["key"]: metric["value"] for metric in run["data"]["metrics"]}
        row = table[tags["pl_dsl.run"]]
        assert run["info"]["run_name"] == f"eps_per_coord={row['attack.eps_per_coord']} seed={row['seed']}"
        assert metrics["g_clean_acc"] == pytest.approx(float(row["g_clean_acc"]))
        assert int(run["info"]["end_time"]) - int(run["info"]["start_time"]) > 0
