"""Real Snakemake runs of tiny specs: outputs, reuse, reruns, failures and recovery."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from pl_dsl.report.results import read_table
from pl_dsl.stages import REGISTRY

from conftest import REPO, computed_units, rows_without_times, run_cli, snakemake, write_spec

METRICS = {m for s in REGISTRY if s.switch is None for m in s.all_metrics}

TINY = (REPO / "tests/specs/valid/tiny.yaml").read_text()


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count from Snakemake's 'Job stats' table."""
    table = output.split("Job stats:")[1].split("\n\n")[0] if "Job stats:" in output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_spec_end_to_end_then_nothing_to_do(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    first = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert first.returncode == 0, first.stderr[-3000:]
    rows = read_rows(tmp_path / "results/tiny/results.csv")
    assert len(rows) == 6
    assert set(rows[0]) >= {"run", "attack.eps_per_coord", "seed", *METRICS}
    for row in rows:
        metrics = json.loads((tmp_path / "results/tiny/runs" / row["run"] / "metrics.json").read_text())
        assert set(metrics["metrics"]) == set(METRICS)
        assert metrics["spec"]["attack"]["targets"] == "balanced"
        assert metrics["metrics"]["pert_norm_mean"] > 0
        assert 0.0 <= metrics["metrics"]["g_clean_acc"] <= 1.0
    for ext in ("png", "svg"):
        assert (tmp_path / f"results/tiny/plots/by_eps.{ext}").stat().st_size > 1000
    # The 3-value eps sweep over 2 seeds trains f once per seed.
    assert computed_units(tmp_path)["train_f"] == 2
    assert len(list((tmp_path / "results/store/train_f").glob("*/model.pt"))) == 2
    assert len(list((tmp_path / "results/store/attack").glob("*/perturbations.pt"))) == 6

    second = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert second.returncode == 0
    assert "Nothing to be done" in second.stdout + second.stderr
    # --cores shapes the batches, but a finished experiment has nothing to do whatever it is.
    for cores in (None, 1, 8):
        dry = snakemake(tmp_path, "--config", f"experiments={spec}", "--dry-run", cores=cores)
        assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr, (cores, dry.stdout[-2000:])


def test_editing_a_plot_redraws_only_the_plot(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    spec.write_text(TINY.replace("series: seed}", "series: seed, title: retitled}"))
    dry = snakemake(tmp_path, "--config", f"experiments={spec}", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert job_counts(dry.stdout) == {"all": 1, "plot": 1, "total": 2}


def test_adding_an_eps_value_reuses_every_trained_f(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={spec}").returncode == 0
    spec.write_text(TINY.replace("[0.01, 0.02, 0.05]", "[0.01, 0.02, 0.05, 0.1]"))
    rerun = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert len(read_rows(tmp_path / "results/tiny/results.csv")) == 8
    computed = computed_units(tmp_path)  # over both runs' jobs
    assert computed["train_f"] == 2 and computed["train_g"] == 8  # g: 6 in the first run, 2 new


def test_invalid_spec_stops_snakemake_with_the_validate_message(tmp_path: Path) -> None:
    spec = REPO / "tests/specs/invalid/bad_values.yaml"
    result = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert result.returncode == 1
    expected = run_cli("validate", str(spec)).stderr
    assert expected.strip() and expected.strip() in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "results").exists()


def test_unknown_experiment_name_is_a_clear_error(tmp_path: Path) -> None:
    result = snakemake(tmp_path, "--config", "experiments=no_such_experiment")
    assert result.returncode == 1
    assert "no experiment 'no_such_experiment'" in result.stderr and "quickstart" in result.stderr


def test_a_diverging_run_is_a_result_of_that_run_only(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "boom", """
name: boom
data: {kind: shifted_gauss, dim: 8, n_train: 30, n_test: 20}
training: {steps: 300, loss: exponential, momentum: 0.0, schedule: constant}
seeds: [0, 1]
sweep:
  grid:
    training.lr: [0.1, 100000.0]
plots:
  - {name: by_lr, x: training.lr, y: g_clean_acc, series: seed}
""")
    result = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    runs = {r["id"]: r["varied"] for r in json.loads(run_cli("runs", str(spec), "--json").stdout)}
    rows = read_table(tmp_path / "results/boom/results.csv")
    assert len(rows) == 4
    for row in rows:
        if runs[row["run"]]["training.lr"] == 0.1:  # the healthy runs have every metric
            assert row["status"] == "ok" and row["note"] == "" and float(row["g_clean_acc"]) > 0.5
        else:
            assert row["status"] == "diverged" and row["g_clean_acc"] == "" and row["f_test_acc"] == ""
            assert re.fullmatch(r"train_f diverged at step \d+ \(loss = (inf|nan)\)", row["note"]), row["note"]
            # The run is named by its swept values where it is reported.
            assert re.search(rf"run {row['run']} \(seed=\d, training.lr=100000.0\): train_f diverged", result.stderr)
    assert (tmp_path / "results/boom/plots/by_lr.png").exists()
    shown = run_cli("results", "boom", "--results", str(tmp_path / "results"))
    assert shown.returncode == 0 and "2 of 4 runs diverged" in shown.stdout
    # A divergence is stored like any result: a rerun has nothing to do.
    again = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert "Nothing to be done" in again.stdout + again.stderr


SLOW_ENOUGH = """
name: killme
data: {kind: shifted_gauss, dim: 50, n_train: 600, n_test: 200}
network: {width: 300}
training: {steps: 1500, lr: 0.5}
attack: {targets: balanced}
seeds: [0, 1, 2, 3]
"""


def _start(workdir: Path, spec: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--cores", "2", "--config", f"experiments={spec}"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _wait_for_first_f(workdir: Path) -> None:
    store = workdir / "results/store/train_f"
    deadline = time.time() + 120
    while time.time() < deadline and not list(store.glob("*/record.json")):
        time.sleep(0.1)


def _job_pids(session: int) -> list[int]:
    listing = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "-s", str(session)], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in listing.splitlines() if "pl_dsl.engine.jobs" in line and "batch" in line]


def _assert_nothing_half_written(workdir: Path) -> None:
    for artifact in (workdir / "results/store").rglob("*.pt"):
        torch.load(artifact, weights_only=True)
    for manifest in (workdir / "results/batches").rglob("*.json"):
        for unit in json.loads(manifest.read_text())["units"]:
            assert list((workdir / "results/store").glob(f"*/{unit['key']}/record.json"))


def test_killed_jobs_and_a_killed_snakemake_resume_to_the_same_results(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "killme", SLOW_ENOUGH)
    clean, jobs_killed, all_killed = tmp_path / "clean", tmp_path / "jobs", tmp_path / "all"
    for directory in (clean, jobs_killed, all_killed):
        directory.mkdir()

    # 1. The training jobs die (OOM killer, scheduler): Snakemake reports the failure.
    process = _start(jobs_killed, spec)
    _wait_for_first_f(jobs_killed)
    pids = _job_pids(process.pid)
    assert pids, "no job was running when the first f appeared"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert process.wait(timeout=300) != 0
    _assert_nothing_half_written(jobs_killed)
    assert not (jobs_killed / "results/killme/results.csv").exists()
    resumed = snakemake(jobs_killed, "--config", f"experiments={spec}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    # 2. Snakemake itself dies with its jobs (power loss): unlock, then rerun.
    process = _start(all_killed, spec)
    _wait_for_first_f(all_killed)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert len(list((all_killed / "results/store/train_f").glob("*/record.json"))) < 4, "the kill came too late"
    _assert_nothing_half_written(all_killed)
    assert snakemake(all_killed, "--unlock", "--config", f"experiments={spec}").returncode == 0
    resumed = snakemake(all_killed, "--config", f"experiments={spec}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    reference = snakemake(clean, "--config", f"experiments={spec}")
    assert reference.returncode == 0
    expected = rows_without_times(clean / "results/killme/results.csv")
    assert rows_without_times(jobs_killed / "results/killme/results.csv") == expected
    assert rows_without_times(all_killed / "results/killme/results.csv") == expected


def test_every_loss_norm_scenario_and_step_count_runs_end_to_end(tmp_path: Path) -> None:
    spec = REPO / "tests/specs/valid/combinations.yaml"
    result = snakemake(tmp_path, "--config", f"experiments={spec}")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_rows(tmp_path / "results/combinations/results.csv")
    assert len(rows) == 3 * 3 * 2 * 2
    seen = {(r["training.loss"], r["attack.norm"], r["scenario"], r["attack.steps"]) for r in rows}
    assert len(seen) == 36
    for row in rows:
        size_mean, size_max = float(row["pert_norm_mean"]), float(row["pert_norm_max"])
        if row["attack.norm"] == "l0":
            assert size_max <= 3
            if row["attack.steps"] == "1":
                assert size_mean == 3
        else:
            assert size_max <= 0.5 * (1 + 1e-5)
            if row["attack.steps"] == "1":
                assert abs(size_mean - 0.5) < 1e-5
        for metric in METRICS:
            assert row[metric] not in ("", "nan", "inf")


def test_an_unknown_config_key_is_an_error_that_names_the_known_ones(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", TINY)
    result = snakemake(tmp_path, "--config", f"experiment={spec}", "--dry-run")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "unknown --config key 'experiment' (did you mean 'experiments'?)" in result.stderr
    assert "known keys: batch_size, experiments," in result.stderr and "pl-dsl run SPEC FIELD=VALUE" in result.stderr


def test_a_different_spec_with_the_same_name_is_refused_unless_forced(tmp_path: Path) -> None:
    first = write_spec(tmp_path, "tiny", TINY)
    assert snakemake(tmp_path, "--config", f"experiments={first}").returncode == 0
    source = json.loads((tmp_path / "results/tiny/source.json").read_text())
    assert source["spec"] == str(first.resolve()) and len(source["sha256"]) == 64
    (tmp_path / "other").mkdir()
    second = write_spec(tmp_path / "other", "tiny", TINY.replace("[0.01, 0.02, 0.05]", "[0.03]"))
    refused = snakemake(tmp_path, "--config", f"experiments={second}")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"holds the results of {first.resolve()}, and {second.resolve()} has the same name 'tiny'" in refused.stderr
    assert len(read_rows(tmp_path / "results/tiny/results.csv")) == 6  # untouched
    # pl-dsl run refuses it before printing anything: no progress, no table of the other spec's runs
    run = run_cli("run", str(second), "--cores", "1", cwd=tmp_path)
    assert run.returncode == 1 and run.stdout == "", run.stdout
    assert run.stderr.startswith(f"pl-dsl: {Path('results/tiny')} holds the results of {first.resolve()}")
    # The same file, edited, is simply rerun; another file with the same name replaces it when forced.
    first.write_text(TINY.replace("[0.01, 0.02, 0.05]", "[0.01, 0.02]"))
    assert snakemake(tmp_path, "--config", f"experiments={first}").returncode == 0
    forced = snakemake(tmp_path, "--config", f"experiments={second}", "force=1")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert len(read_rows(tmp_path / "results/tiny/results.csv")) == 2
    assert json.loads((tmp_path / "results/tiny/source.json").read_text())["spec"] == str(second.resolve())
