"""Warm jobs (pl_dsl.engine.warm): a job runs in a process forked from a server that has imported
torch, gives the numbers of a job that runs itself, and dies or stops with its job process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_status import LONG_F as LONG_STATUS_F

from pl_dsl.engine.warm import BATCH_JOB_VARIABLES, enabled, stop_servers

from conftest import REPO, rows_without_times, snakemake, write_spec

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="warm jobs are Linux only")

# One run whose f trains long enough to be caught computing (test_status.py's, longer).
LONG_F = LONG_STATUS_F.replace("steps: 400", "steps: 3000")


# These tests are about warm jobs, whatever the environment they run in says.
WARM = {"PL_DSL_WARM_JOBS": "1"}


def test_warm_cold_and_unreachable_servers_give_the_same_numbers(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "tiny", (REPO / "tests/specs/valid/tiny.yaml").read_text())
    tables = []
    for name, env in (("warm", WARM), ("cold", {"PL_DSL_WARM_JOBS": "0"}),
                      ("unreachable", {**WARM, "PL_DSL_WARM_DIR": "/dev/null/warm"})):  # no folder: jobs run themselves
        folder = tmp_path / name
        folder.mkdir()
        done = snakemake(folder, "--config", f"experiments={spec}", env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        tables.append(rows_without_times(folder / "results/tiny/results.csv"))
    assert tables[0] and tables[0] == tables[1] == tables[2]


def _start_long_f(folder: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Snakemake on LONG_F; the pids of its job process and of the process computing the job."""
    spec = write_spec(folder, "long_f", LONG_F)
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(folder), "--cores", "1",
               "--config", f"experiments={spec}"]
    workflow = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **WARM})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        progress = list((folder / "results/progress").glob("*/*.json"))
        if progress:
            try:
                computing = json.loads(progress[0].read_text())["pid"]
                break
            except (OSError, ValueError):
                pass
        time.sleep(0.1)
    else:
        workflow.kill()
        raise AssertionError("no job reported progress")
    listing = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "-s", str(workflow.pid)], capture_output=True,
                             text=True).stdout
    (job,) = [int(line.split()[0]) for line in listing.splitlines() if "pl_dsl.engine.jobs" in line]
    return workflow, job, computing


def _gone(pid: int, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


def test_a_killed_job_process_takes_its_worker_a_killed_worker_its_job_and_an_interrupt_stops_both(
        tmp_path: Path) -> None:
    killed, worker_killed, interrupted = tmp_path / "killed", tmp_path / "worker_killed", tmp_path / "interrupted"
    for folder in (killed, worker_killed, interrupted):
        folder.mkdir()
    workflow, job, worker = _start_long_f(killed)
    assert worker != job, "the job computed in its own process, not in a warm worker"
    os.kill(job, signal.SIGKILL)  # as a scheduler would
    assert _gone(worker), "the worker computed on after its job process was killed"
    assert workflow.wait(timeout=120) != 0
    assert not list((killed / "results/store/train_f").glob("*/record.json"))

    workflow, job, worker = _start_long_f(worker_killed)
    os.kill(worker, signal.SIGKILL)  # as the OOM killer would: the job process dies of it too
    assert _gone(job), "the job process outlived its worker"
    assert workflow.wait(timeout=120) != 0

    workflow, job, worker = _start_long_f(interrupted)
    os.kill(job, signal.SIGINT)  # passed on: the worker stops as the job's own process would
    assert _gone(worker) and _gone(job)
    assert workflow.wait(timeout=120) != 0
    log = next((interrupted / "logs/fused").glob("*.log")).read_text()
    assert "interrupted: the units finished so far are stored" in log


def test_a_job_passes_on_its_streams_and_status_and_stop_servers_stops_its_server(tmp_path: Path) -> None:
    env = {**os.environ, **WARM, "PL_DSL_WARM_DIR": str(tmp_path)}  # a folder of its own: the server is this job's
    missing = tmp_path / "no-such-plan.json"
    command = [sys.executable, "-m", "pl_dsl.engine.jobs", "--log", os.devnull, "batch", "--plan", str(missing),
               "--manifest", str(tmp_path / "manifest.json")]
    # Interrupted at once, while its server imports torch: the signal waits for the worker, which
    # stops before the job starts (exit 130, as an interrupted job), with nothing said.
    interrupted = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob("*.log")) and time.monotonic() < deadline:  # it has started its server
        time.sleep(0.02)
    interrupted.send_signal(signal.SIGINT)
    assert interrupted.wait(timeout=120) == 130 and interrupted.communicate() == ("", "")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 1 and f"pl-dsl error: missing file {missing}" in done.stderr, done.stderr
    (lock,) = tmp_path.glob("*.lock")
    server = int(lock.read_text())
    assert Path(f"/proc/{server}").exists()
    assert stop_servers(tmp_path) == 1
    assert _gone(server) and not list(tmp_path.glob("*.sock"))
    assert stop_servers(tmp_path) == 0


def test_only_the_jobs_that_import_torch_run_warm(tmp_path: Path) -> None:
    """A table or report job runs itself: it needs no torch, so a server would only add its start."""
    env = {**os.environ, **WARM, "PL_DSL_WARM_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "pl_dsl.engine.jobs", "--log", os.devnull, "collect", "--plan",
                           str(tmp_path / "no-such-plan.json"), "--table", str(tmp_path / "t.csv"), "--runs",
                           str(tmp_path / "runs")], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "pl-dsl error: missing file" in done.stderr, done.stderr
    assert not list(tmp_path.glob("*.lock")), "a collect job started a server"


@pytest.mark.parametrize("value", ["0", "false", "No", " off "])
def test_warm_jobs_are_turned_off_by_the_usual_words(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for name in BATCH_JOB_VARIABLES:  # as on a workstation, not inside a batch job
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PL_DSL_WARM_JOBS", value)
    assert not enabled()
    monkeypatch.setenv("PL_DSL_WARM_JOBS", "1")
    assert enabled()
