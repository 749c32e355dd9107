"""Jobs run warm (forked from a server that has imported torch, pl_dsl.engine.warm) against jobs
that import torch themselves, side by side in one run: the wall and the CPU seconds of
`snakemake --cores 2` of one spec from empty, in three ways that take turns:

- cold: PL_DSL_WARM_JOBS=0, every job imports torch;
- warm, first run: a server folder of its own, so the run starts its servers (and pays their imports);
- warm, servers running: the servers of an earlier run are still up, as in a session of several runs.

CPU is the run's processes (Snakemake and the job processes) plus what the servers and their
workers spent during the run (from /proc: a server's own time and its reaped workers'). The
median of --repeat runs of each is printed, with its ratio to cold. Linux only.

Usage: python benchmarks/warm_jobs.py [--spec FILE] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pl_dsl.engine.warm import FOLDER_VARIABLE, stop_servers  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def servers_cpu(folder: Path) -> float:
    """CPU seconds of the live servers in folder so far: theirs and their reaped workers'."""
    total = 0.0
    for lock in folder.glob("*.lock"):
        try:
            fields = Path(f"/proc/{int(lock.read_text())}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        total += sum(int(value) for value in fields[11:15]) / TICKS  # utime, stime, cutime, cstime
    return total


def run(spec: Path, work: Path, environment: dict[str, str], servers: Path) -> tuple[float, float]:
    """Wall and CPU seconds of snakemake of spec from empty in work."""
    work.mkdir()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    served = servers_cpu(servers)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(work),
                           "--cores", "2", "--quiet", "--config", f"experiments={spec}"],
                          env={**os.environ, **environment}, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"snakemake failed in {work}:\n{done.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, own + servers_cpu(servers) - served


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=REPO / "tests" / "specs" / "valid" / "tiny.yaml",
                        help="the experiment to run (default: the tests' tiny sweep, 6 runs)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each way (default 5)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more")
    if sys.platform != "linux":
        sys.exit("warm jobs are Linux only")
    spec = args.spec.resolve()
    if not spec.is_file():
        parser.error(f"--spec {args.spec}: no such file")
    ways = ("cold", "warm, first run", "warm, servers running")
    measured: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        running = root / "servers-running"
        run(spec, root / "start-servers", {FOLDER_VARIABLE: str(running)}, running)
        try:
            for attempt in range(args.repeat):
                for way in ways if attempt % 2 == 0 else reversed(ways):
                    work = root / f"{attempt}-{ways.index(way)}"
                    if way == "cold":
                        measured[way].append(run(spec, work, {"PL_DSL_WARM_JOBS": "0"}, work / "none"))
                    elif way == "warm, first run":
                        fresh = root / f"servers-{attempt}"
                        measured[way].append(run(spec, work, {FOLDER_VARIABLE: str(fresh)}, fresh))
                        stop_servers(fresh)
                    else:
                        measured[way].append(run(spec, work, {FOLDER_VARIABLE: str(running)}, running))
        finally:
            stop_servers(running)
    print(f"snakemake --cores 2 of {args.spec} from empty, median of {args.repeat} (ratio to cold):")
    cold_wall, cold_cpu = (statistics.median(values) for values in zip(*measured["cold"], strict=True))
    for way in ways:
        wall, cpu = (statistics.median(values) for values in zip(*measured[way], strict=True))
        print(f"  {way:22} wall {wall:6.2f} s ({wall / cold_wall:.2f}x)   CPU {cpu:6.2f} s ({cpu / cold_cpu:.2f}x)")


if __name__ == "__main__":
    main()
