"""Device assignment on a multi-GPU machine, with fake device lists (no GPU needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pl_dsl.engine.gpus import claim_device, visible_devices

HOLDER = """
import json, sys, time
from pathlib import Path
from pl_dsl.engine.gpus import claim_device
devices, lock_dir, out = json.loads(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
with claim_device(devices, lock_dir, poll=0.02) as index:
    start = time.time()
    time.sleep(0.4)
    out.write_text(json.dumps({"device": devices[index], "start": start, "end": time.time()}))
"""


def test_concurrent_jobs_never_share_a_device(tmp_path: Path) -> None:
    devices = ["0", "1", "GPU-3f2a"]
    jobs = [subprocess.Popen([sys.executable, "-c", HOLDER, json.dumps(devices), str(tmp_path / "locks"),
                              str(tmp_path / f"job{i}.json")]) for i in range(7)]
    assert all(job.wait(timeout=60) == 0 for job in jobs)
    held = [json.loads((tmp_path / f"job{i}.json").read_text()) for i in range(7)]
    assert {h["device"] for h in held} == set(devices)
    for a in held:
        for b in held:
            if a is not b and a["device"] == b["device"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)


def test_a_killed_job_releases_its_device(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
                               "from pl_dsl.engine.gpus import claim_device\n"
                               "with claim_device(['only'], Path(sys.argv[1])):\n"
                               "    Path(sys.argv[2]).touch(); time.sleep(60)\n",
                               str(tmp_path / "locks"), str(tmp_path / "held")])
    deadline = time.time() + 30
    while not (tmp_path / "held").exists() and time.time() < deadline:
        time.sleep(0.05)
    holder.kill()
    holder.wait()
    start = time.time()
    with claim_device(["only"], tmp_path / "locks", poll=0.02) as index:
        assert index == 0
    assert time.time() - start < 5


def test_visible_devices_follow_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert visible_devices() == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_devices() == []


def test_under_slurm_the_assigned_device_is_used_without_locking(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    with claim_device(["7"], tmp_path / "locks") as index:
        assert index == 0
    assert not (tmp_path / "locks").exists()
