"""`pl-dsl status` during and after a real workflow, progress inside jobs, `pl-dsl doctor`."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pl_dsl.engine.progress import Progress, is_stale, read_progress

from conftest import REPO, run_cli, snakemake, write_spec

# One run whose f trains long enough (a few seconds on one core) to be seen running.
LONG_F = """
name: long_f
data: {kind: shifted_gauss, dim: 200, n_train: 4000, n_test: 100}
network: {width: 400}
train_f: {steps: 400, lr: 0.1, momentum: 0.0, schedule: constant}
train_g: {steps: 5}
seeds: [0]
"""


def status_json(workdir: Path, spec: Path) -> dict:
    result = run_cli("status", str(spec), "--json", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stage_counts(state: dict, stage: str) -> dict:
    return next(s for s in state["experiments"][0]["stages"] if s["stage"] == stage)


def test_status_follows_a_running_workflow_and_jobs_report_progress(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "long_f", LONG_F)
    before = status_json(tmp_path, spec)
    assert before["experiments"][0]["runs_complete"] == 0
    assert stage_counts(before, "train_f") == {**stage_counts(before, "train_f"), "units": 1, "pending": 1, "done": 0}
    assert before["experiments"][0]["remaining_seconds"] > 0
    env = {**os.environ, "PL_DSL_PROGRESS_SECONDS": "0.2", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
               "--cores", "1", "--config", f"experiments={spec}"]
    seen_running: dict | None = None
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) as workflow:
        deadline = time.monotonic() + 300
        while workflow.poll() is None and time.monotonic() < deadline:
            state = status_json(tmp_path, spec)
            running = [job for job in state["jobs"] if job.get("step")]
            if running and seen_running is None:
                seen_running = {"job": running[0], "train_f": stage_counts(state, "train_f")}
                text = run_cli("status", str(spec), cwd=tmp_path).stdout
                assert "running jobs" in text and f"/{running[0]['steps']}" in text
            time.sleep(0.3)
        output = workflow.communicate()[0]
    assert workflow.returncode == 0, output[-3000:]
    assert seen_running is not None, "status never saw a job reporting progress"
    job = seen_running["job"]
    assert job["stage"] == "train_f" and job["steps"] == 400 and 0 < job["step"] <= 400
    assert math.isfinite(job["loss"]) and job["eta_seconds"] is not None and not job["stale"]
    assert seen_running["train_f"]["running"] == 1 and seen_running["train_f"]["done"] == 0
    after = status_json(tmp_path, spec)
    assert after["jobs"] == []  # finished jobs remove their progress files
    assert after["experiments"][0]["runs_complete"] == 1
    assert all(s["done"] == s["units"] and s["remaining_seconds"] == 0 for s in after["experiments"][0]["stages"])
    # The job's log has the plain progress lines: step k of T, loss, ETA.
    log = next((tmp_path / "logs/fused").glob("*.log")).read_text()  # one chain: one fused job
    assert "step " in log and "/400, loss " in log and "ETA " in log


# A user's stage that always fails (a bug in their code, say).
FAILING_STAGE = """
from pl_dsl.engine.registry import Stage
from pl_dsl.stages.common import BaseParams


def compute(ctx, params):
    raise RuntimeError("the user's stage broke")


STAGE = Stage(name="broken", params=BaseParams, compute=compute, cost=lambda params: 1.0, writes={},
              metrics={"broken_metric": "never computed"})
"""


def test_status_names_a_failed_unit(tmp_path: Path) -> None:
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "broken_stage.py").write_text(FAILING_STAGE)
    spec = write_spec(tmp_path, "tiny", (REPO / "tests/specs/valid/tiny.yaml").read_text())
    env = {"PYTHONPATH": f"{modules}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    assert snakemake(tmp_path, "--config", f"experiments={spec}", "stage_modules=broken_stage", env=env).returncode != 0
    result = subprocess.run([sys.executable, "-m", "pl_dsl", "status", str(spec), "--json", "--stage-modules",
                             "broken_stage"], cwd=tmp_path, capture_output=True, text=True, env={**os.environ, **env})
    state = json.loads(result.stdout)
    assert stage_counts(state, "broken")["failed"] == 2 and stage_counts(state, "train_f")["done"] == 2
    assert "RuntimeError: the user's stage broke" in state["experiments"][0]["failures"][0]
    assert state["experiments"][0]["runs_complete"] == 0


def test_progress_is_throttled_drawn_on_terminals_and_turns_stale(tmp_path: Path) -> None:
    log = io.StringIO()
    path = tmp_path / "progress/train_f/abc.json"
    progress = Progress(log, path, "train_f", "abc", units=2, interval=1.0, terminal=False)
    progress.start_unit("k1", ["r1"])
    progress.step(1, 10, 0.5)  # too early: nothing reported
    assert log.getvalue() == ""
    time.sleep(1.1)
    progress.step(2, 10, 0.25)
    assert "train_f unit 1/2 k1 (runs r1): step 2/10, loss 0.25, ETA" in log.getvalue()
    state = read_progress(tmp_path / "progress")[0]
    assert state["step"] == 2 and state["unit"] == "k1" and not is_stale(state)
    assert is_stale(state, now=state["updated"] + 3600)
    progress.end_unit()
    assert read_progress(tmp_path / "progress")[0]["done"] == 1
    progress.close()
    assert not path.exists()


def test_progress_on_a_terminal_draws_a_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    progress = Progress(io.StringIO(), tmp_path / "p.json", "train_g", "b", units=1, interval=0.0, terminal=True)
    progress.start_unit("k", ["r"])
    progress.step(5, 10, 1.0)
    assert "step 5/10" in capsys.readouterr().err


def test_doctor_reports_the_torch_build_and_devices() -> None:
    import torch

    result = run_cli("doctor")
    assert result.returncode == 0, result.stderr
    assert torch.__version__ in result.stdout and "snakemake" in result.stdout
    if os.environ.get("PL_DSL_REQUIRE_REAL_DATA") == "1":  # CI installs both: each is found and checked
        lines = [line for line in result.stdout.splitlines() if "data: mnist" in line or "data: fmnist" in line]
        assert len(lines) == 2 and all("all 4 files match the canonical files (sha256)" in line for line in lines), lines
    required = run_cli("doctor", "--require-cuda")
    if torch.cuda.is_available():
        assert required.returncode == 0 and "cuda:0" in required.stdout
    else:
        assert required.returncode == 1 and "no CUDA device" in required.stderr
        assert "Traceback" not in required.stderr


def test_jobs_stop_when_snakemake_is_killed(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "long_f", LONG_F.replace("steps: 400", "steps: 3000"))
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path),
               "--cores", "1", "--config", f"experiments={spec}"]
    workflow = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    jobs: list[int] = []
    while not jobs and time.monotonic() < deadline:
        listing = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "-s", str(workflow.pid)],
                                 capture_output=True, text=True).stdout
        jobs = [int(line.split()[0]) for line in listing.splitlines() if "pl_dsl.engine.jobs" in line]
        time.sleep(0.2)
    assert jobs, "no batch job started"
    # Killed at once, while the job is still starting (importing torch): it must notice all the same.
    os.kill(workflow.pid, signal.SIGKILL)  # Snakemake alone: its job is left behind
    workflow.wait()
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{pid}").exists() for pid in jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(Path(f"/proc/{pid}").exists() for pid in jobs), "the orphaned job kept running"
    log = next((tmp_path / "logs/fused").glob("*.log")).read_text()
    assert "that started this job is gone" in log
    assert not list((tmp_path / "results/store/train_f").glob("*/record.json"))  # nothing half-stored
