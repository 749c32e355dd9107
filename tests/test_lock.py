"""Two runs of one experiment at once (two terminals): the second is refused in pl-dsl's words
(which experiment, that another run holds it, how to wait or unlock) and exits non-zero, with
nothing done; two different experiments at once both run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, run_cli, write_spec

LONG = """name: long
data: {kind: shifted_gauss, dim: 100, n_train: 1000, n_test: 500}
network: {width: 100}
training: {steps: 2500, lr: 1.0}
attack: {eps: 0.01, targets: balanced}
seeds: [0, 1, 2]
"""


def test_a_second_run_of_one_experiment_is_refused_and_another_experiment_runs(tmp_path: Path) -> None:
    long = write_spec(tmp_path, "long", LONG)
    other = write_spec(tmp_path, "tiny", (REPO / "tests/specs/valid/tiny.yaml").read_text())
    first = subprocess.Popen([sys.executable, "-m", "pl_dsl", "run", str(long), "--cores", "1"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.monotonic()
    while not list((tmp_path / "results/progress").glob("*/*.json")):  # its job is computing
        assert first.poll() is None and time.monotonic() - started < 120, first.communicate()
        time.sleep(0.2)
    second = run_cli("run", str(long), "--cores", "1", cwd=tmp_path)
    assert second.returncode != 0
    assert "pl-dsl run: long is being computed by another run in" in second.stderr
    assert "wait for it to finish" in second.stderr and "-- --unlock` removes its stale lock" in second.stderr
    assert "LockException" not in second.stderr + second.stdout and "Traceback" not in second.stderr
    beside = run_cli("run", str(other), "--cores", "1", cwd=tmp_path)
    assert beside.returncode == 0, beside.stderr[-2000:]
    assert first.poll() is None, "the first run was still computing while the other experiment ran"
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    assert "runs 3/3 done" in out
