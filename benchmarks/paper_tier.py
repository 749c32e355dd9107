"""The CPU paper tier: wall time from an empty results folder, and per spec the compute recorded
by its units (each unit counted once), its runs and how many claims pass.

    python benchmarks/paper_tier.py                  # runs `snakemake --cores 2` on experiments/paper-small
    python benchmarks/paper_tier.py --keep DIR       # the same, in DIR (empty or new), kept afterwards
    python benchmarks/paper_tier.py --workdir DIR    # only reads a finished run in DIR

The share of wall time that is computation is the recorded unit seconds over (cores x wall);
the rest is process start-up, imports, planning, plotting and idle cores.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pl_dsl.engine.names import NotFound, spec_files
from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import build_plan
from pl_dsl.engine.store import read_json
from pl_dsl.spec.check import load_experiment
from pl_dsl.spec.expand import Experiment
from pl_dsl.stages import REGISTRY

REPO = Path(__file__).resolve().parent.parent


def recorded_computations(layout: Layout, experiment: Experiment) -> tuple[int, dict[tuple[str, ...], float]]:
    """The distinct units of an experiment, and the compute seconds its stored units recorded per
    computation. Units computed together (step prefixes, stacked nets) record the seconds since
    their shared computation began: each computation counts once, by its longest member."""
    plan = build_plan([experiment], REGISTRY)
    units = {(u.stage, u.key) for members in plan.experiments[experiment.name].units.values() for u in members}
    computations: dict[tuple[str, ...], float] = {}
    for stage, key in units:
        record = read_json(layout.unit(stage, key) / "record.json")
        together = (stage, *sorted(record.get("computed_with", [key])))
        computations[together] = max(computations.get(together, 0.0), record["seconds"])
    return len(units), computations


def report(workdir: Path, files: list[Path], wall: float | None, cores: int) -> None:
    layout = Layout(workdir / "results")
    everything: dict[tuple[str, ...], float] = {}  # over all specs: a unit two specs share counts once
    print(f"{'spec':<22}{'runs':>6}{'units':>7}{'compute s':>11}  claims passed")
    for file in files:
        experiment = load_experiment(file)
        table = layout.table(experiment.name)
        if not table.exists():
            print(f"{file.stem:<22}  not run (see the workflow's output: data files missing?)")
            continue
        units, computations = recorded_computations(layout, experiment)
        seconds = sum(computations.values())
        for together, spent in computations.items():  # specs may hold different members of one computation
            everything[together] = max(everything.get(together, 0.0), spent)
        claims = ""
        if layout.claims(experiment.name).exists():
            with open(layout.claims(experiment.name), newline="") as handle:
                rows = list(csv.DictReader(handle))
            claims = f"{sum(r['passed'] == 'true' for r in rows)} of {len(rows)}"
        print(f"{file.stem:<22}{len(experiment.runs):>6}{units:>7}{seconds:>11.1f}  {claims}")
    total = sum(everything.values())
    print(f"unit compute, all specs, each unit once (a spec's figure counts the units it shares with others): {total:.1f} s")
    if wall is not None:
        print(f"wall time from empty, --cores {cores}: {wall:.1f} s ({wall / 60:.1f} min); "
              f"computation {total / (cores * wall):.0%} of cores x wall, the rest start-up, I/O, plots, idle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="a finished run to read (default: run the tier now)")
    parser.add_argument("--keep", type=Path, help="run the tier in this folder and keep it")
    parser.add_argument("--experiments", default="paper-small")
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    try:
        files = spec_files(args.experiments, Layout((args.workdir or REPO) / "results"), REPO)
    except NotFound as error:
        parser.error(f"--experiments: {error}")
    if args.workdir:
        if not (args.workdir / "results").is_dir():
            parser.error(f"--workdir {args.workdir}: no results/ folder there (give the folder a tier run was kept in)")
        report(args.workdir, files, None, args.cores)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        if workdir.exists() and any(workdir.iterdir()):
            sys.exit(f"{workdir} is not empty: the tier is timed from an empty folder")
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "--cores",
                        str(args.cores), "--config", f"experiments={args.experiments}", "--quiet"],
                       check=True, cwd=REPO)
        report(workdir, files, time.perf_counter() - start, args.cores)


if __name__ == "__main__":
    main()
