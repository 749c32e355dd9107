"""Shared helpers: the repository root, running the real CLI and real Snakemake, markers."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A calibration of this machine (pl-dsl doctor --calibrate) would change the runtimes the tests
# read: every test, and every process they start, sees none unless it sets its own.
os.environ["PL_DSL_CALIBRATION"] = str(REPO / "tests" / "no-calibration.json")


def pytest_configure(config: pytest.Config) -> None:
    """The jobs the tests start run in warm servers (pl_dsl.engine.warm) of this test session only:
    the controller makes their folder, and xdist's workers inherit it with the environment."""
    if not hasattr(config, "workerinput"):
        os.environ["PL_DSL_WARM_DIR"] = tempfile.mkdtemp(prefix="pl-dsl-warm-")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop this session's warm servers (they would otherwise idle out) and remove their folder."""
    if not hasattr(config, "workerinput"):
        from pl_dsl.engine.warm import stop_servers

        folder = Path(os.environ["PL_DSL_WARM_DIR"])
        stop_servers(folder)
        shutil.rmtree(folder, ignore_errors=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run slow paper-scale tests")


# The test files that take longest (`pytest --durations`), run first: with `make test`'s workers
# (`-n CORES --dist loadfile`), a long file begun last would keep one worker busy alone at the end.
LONGEST_FIRST = ("test_paper.py", "test_reference_streams.py", "test_slurm.py", "test_workflow.py",
                 "test_datasets.py", "test_faults.py", "test_run_cli.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    order = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: order.get(item.path.name, len(order)))  # stable: the rest as collected

    skip_slow = pytest.mark.skip(reason="slow: give --runslow")
    skip_cuda = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "cuda" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_cuda)


# The interpreter whose pl-dsl the CLI tests run: this one (the checkout's editable install), or
# the one named here (tests/test_packaging.py runs tests against a wheel installed as users do).
CLI_PYTHON = os.environ.get("PL_DSL_TEST_PYTHON", sys.executable)


def run_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `pl-dsl ARGS` as a user would, in a subprocess (env: extra variables)."""
    return subprocess.run([CLI_PYTHON, "-m", "pl_dsl", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def snakemake(workdir: Path, *args: str, cores: int | None = 2, timeout: float = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow with its results in workdir (env: extra variables; cores
    None: no --cores, as in a plain dry run)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               *(["--cores", str(cores)] if cores is not None else []), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)


def computed_units(workdir: Path, since: float | None = None) -> Counter[str]:
    """Units computed (not reused) per stage, over every batch manifest (stage or fused job),
    or those written after `since`."""
    counts: Counter[str] = Counter()
    for manifest in (workdir / "results/batches").rglob("*.json"):
        if since is None or manifest.stat().st_mtime > since:
            for unit in json.loads(manifest.read_text())["units"]:
                counts[unit["stage"]] += unit["computed"]
    return +counts


def rows_without_times(path: Path) -> list[dict[str, str]]:
    """A results table's rows without its time columns: what two runs of one spec must share."""
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if not k.startswith("time")} for row in csv.DictReader(handle)]


def write_spec(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path
