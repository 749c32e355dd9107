"""An interrupted `pl-dsl run` keeps what it finished: SIGINT to pl-dsl (as `timeout -s INT` or a
scheduler sends it) stops Snakemake and its fused job, every unit stored so far stays, the
rerun computes only the rest; and without a terminal the progress is a plain line at most
every 10 s."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import run_cli, write_spec

SPEC = """name: interrupted
data: {kind: shifted_gauss, dim: 100, n_train: 1000, n_test: 500}
network: {width: 100}
training: {steps: 1500, lr: 1.0}
attack: {eps: 0.01, targets: balanced}
seeds: [0, 1, 2, 3, 4, 5]
sweep:
  grid:
    train_g.lr: [1.0, 0.5]
"""


def stored(workdir: Path) -> set[str]:
    return {str(record.parent) for record in (workdir / "results/store").glob("*/*/record.json")}


def test_an_interrupted_run_keeps_its_units_and_the_rerun_computes_only_the_rest(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "interrupted", SPEC)
    started = time.monotonic()
    # Started as a script's background job is: with SIGINT ignored, which Snakemake and its jobs
    # would inherit; pl-dsl must stop on SIGINT all the same.
    process = subprocess.Popen([sys.executable, "-m", "pl_dsl", "run", str(spec), "--cores", "2"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    while not list((tmp_path / "results/store").glob("train_g/*/record.json")):
        assert process.poll() is None and time.monotonic() - started < 240, "no g was stored"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert process.returncode == 130, err
    assert "pl-dsl run: interrupted;" in err and "again computes only the rest" in err and "Traceback" not in err
    kept = stored(tmp_path)
    total = 6 + 6 + 12 + 12  # f and the attack per seed, g and evaluate per run
    assert 0 < len(kept) < total
    assert not list((tmp_path / "results/store").rglob("*.tmp*"))  # nothing half-written
    time.sleep(1.0)
    assert not subprocess.run(["pgrep", "-f", f"pl_dsl.engine.jobs --results {tmp_path}"], capture_output=True).stdout
    # Without a terminal: the first line at once, then at most one every 10 s, and the last.
    progress = [line for line in out.splitlines() if re.match(r"runs \d+/12 done, units \d+/36", line)]
    assert 2 <= len(progress) <= 2 + elapsed // 10, out
    rerun = run_cli("run", str(spec), "--cores", "2", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "runs 12/12 done" in rerun.stdout
    computed = sum(unit["computed"] for manifest in (tmp_path / "results/batches").rglob("*.json")
                   for unit in json.loads(manifest.read_text())["units"])
    assert computed == total - len(kept)
