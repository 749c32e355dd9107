"""Signs of life from a running batch job: every few seconds of a long computation, a line in
the job's log (unit, step k of T, loss, ETA), the same line drawn with a bar on a terminal, and
a small progress file that `pl-dsl status` reads.

Reports are throttled by time (`PL_DSL_PROGRESS_SECONDS`, default 10 s): a unit shorter than
that prints nothing. On a terminal the lines are drawn by rich but never redrawn in place,
because the jobs Snakemake runs side by side share one terminal.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from pl_dsl.engine.store import read_json, write_json
from pl_dsl.errors import StageFailure

DEFAULT_INTERVAL_SECONDS = 10.0
# A progress file not updated for this many intervals (and at least a minute) belongs to a job
# that was killed or is stuck.
STALE_INTERVALS = 6


# How often a job checks that the Snakemake process that started it still runs.
PARENT_CHECK_SECONDS = 2.0


class Orphaned(StageFailure):
    """The Snakemake process that started this job is gone: the job stops instead of running on."""


def _is_snakemake(pid: int) -> bool:
    """Whether pid is a live Snakemake process (a killed one not yet reaped has no command line)."""
    try:
        return b"snakemake" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# The Snakefile records the pid of the Snakemake process that parses it (and starts the jobs).
SNAKEMAKE_PID_VARIABLE = "PL_DSL_SNAKEMAKE_PID"


def snakemake_parent() -> int | None:
    """The local Snakemake process that started this job, from the environment it handed down (None
    when not started by a local Snakemake, or where /proc is missing). Read, not searched among the
    ancestors: a Snakemake killed while the job was still importing torch has no descendants left
    to find it from."""
    if not Path("/proc/self/cmdline").exists():
        return None
    try:
        return int(os.environ[SNAKEMAKE_PID_VARIABLE])
    except (KeyError, ValueError):
        return None


def report_interval() -> float:
    """Seconds between two reports of one job (`PL_DSL_PROGRESS_SECONDS`)."""
    try:
        return max(0.05, float(os.environ.get("PL_DSL_PROGRESS_SECONDS", DEFAULT_INTERVAL_SECONDS)))
    except ValueError:
        return DEFAULT_INTERVAL_SECONDS


def is_stale(state: dict[str, Any], now: float | None = None) -> bool:
    """Whether a progress file's job has stopped reporting (killed, or stuck)."""
    quiet = (now if now is not None else time.time()) - float(state.get("updated", 0))
    return quiet > max(60.0, STALE_INTERVALS * float(state.get("interval", DEFAULT_INTERVAL_SECONDS)))


def read_progress(folder: Path) -> list[dict[str, Any]]:
    """Every progress file under a results root's progress folder (unreadable ones skipped)."""
    states = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            states.append(read_json(path))
        except (OSError, ValueError):
            continue  # being replaced right now, or damaged: the next look sees it
    return states


class Progress:
    """Reports one batch job's progress to its log, its progress file and a terminal."""

    def __init__(self, log: TextIO, path: Path, stage: str, batch: str, units: int,
                 interval: float | None = None, terminal: bool | None = None) -> None:
        self.log = log
        self.path = path
        self.interval = interval if interval is not None else report_interval()
        self.terminal = sys.stderr.isatty() if terminal is None else terminal
        self.state: dict[str, Any] = {
            "stage": stage, "batch": batch, "units": units, "done": 0, "host": socket.gethostname(),
            "pid": os.getpid(), "started": time.time(), "interval": self.interval}
        self._unit_start = time.perf_counter()
        self._last = self._checked = time.perf_counter()
        self.parent = snakemake_parent()
        self.check_parent()
        self._write()

    def check_parent(self) -> None:
        """Stop (raise Orphaned) when the Snakemake process that started this job is gone, so a
        killed Snakemake does not leave jobs computing on with nobody to collect their work."""
        if self.parent is not None and not _is_snakemake(self.parent):
            message = (f"snakemake (pid {self.parent}) that started this job is gone; the job stops, the unit in "
                       "progress is not stored. Run `snakemake --unlock`, then the same command again")
            self.log.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
            self.log.flush()
            raise Orphaned(message)

    def start_unit(self, key: str, runs: list[str], stage: str | None = None) -> None:
        """A unit (of `stage`, in a fused job) starts computing."""
        self.check_parent()
        if stage is not None:
            self.state["stage"] = stage
        self.state.update(unit=key, runs=runs[:5], step=None, steps=None, loss=None, eta_seconds=None)
        self._write()
        self._unit_start = self._last = time.perf_counter()

    def step(self, step: int, steps: int, loss: float) -> None:
        """Step `step` of `steps` of the current unit ended with this loss; reported if due."""
        now = time.perf_counter()
        if now - self._checked >= PARENT_CHECK_SECONDS:
            self._checked = now
            self.check_parent()
        if now - self._last < self.interval:
            return
        self._last = now
        elapsed = now - self._unit_start
        eta = elapsed / step * (steps - step) if step else None
        self.state.update(step=step, steps=steps, loss=loss, eta_seconds=eta)
        self._write()
        runs = ",".join(self.state["runs"])
        text = (f"{self.state['stage']} unit {self.state['done'] + 1}/{self.state['units']} {self.state['unit']} "
                f"(runs {runs}): step {step}/{steps}, loss {loss:.4g}, ETA {duration(eta)}")
        self.log.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.log.flush()
        if self.terminal:
            self._draw(step, steps, text)

    def end_unit(self, count: int = 1) -> None:
        """The current unit (or `count` units computed together) is stored, or was already."""
        self.state["done"] += count
        self.state.update(unit=None, step=None, steps=None, loss=None, eta_seconds=None)
        self._write()

    def close(self) -> None:
        """The job ends: its progress file goes away (a killed job's file stays, and turns stale)."""
        self.path.unlink(missing_ok=True)

    def _write(self) -> None:
        self.state["updated"] = time.time()
        write_json(self.path, self.state)

    @staticmethod
    def _draw(step: int, steps: int, text: str) -> None:
        from rich.console import Console
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        line = Table.grid(padding=(0, 1))
        line.add_row(ProgressBar(total=steps, completed=step, width=20), f"[cyan]{text}[/cyan]")
        Console(stderr=True, highlight=False).print(line)


def duration(seconds: float | None) -> str:
    """Seconds for people: 40s, 12min, 3.5h."""
    if seconds is None:
        return "unknown"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"
