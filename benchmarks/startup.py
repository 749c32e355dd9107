"""What a process of a run pays before its work, with pl_dsl's bytecode on disk and without it,
side by side in one run: the CPU seconds of `pl-dsl validate` of the quick start, of a Snakemake
dry run of it, and of a batch job's imports before torch (`pl_dsl.engine.jobs` and the stages).

Both copies of pl_dsl are this checkout's, one compiled (`python -m compileall`, as `make`
does) and one not, each first on PYTHONPATH and run from its own folder;
PYTHONDONTWRITEBYTECODE=1 keeps the second from writing its own. The two take turns, which
goes first alternating, and the median of --repeat runs of each is printed with their ratio.

Usage: python benchmarks/startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "experiments" / "quickstart.yaml"


def commands(package_parent: Path) -> dict[str, list[str]]:
    """What each measured process runs (Snakemake reads the copy's Snakefile, which imports the copy)."""
    snakefile = package_parent / "pl_dsl" / "workflow" / "Snakefile"
    return {
        "pl-dsl validate": [sys.executable, "-m", "pl_dsl", "validate", str(SPEC)],
        "snakemake -n": [sys.executable, "-m", "snakemake", "-s", str(snakefile), "-d", str(package_parent / "results"),
                         "-n", "--quiet", "--config", f"experiments={SPEC}"],
        "a job's imports": [sys.executable, "-c", "import pl_dsl.engine.jobs, pl_dsl.stages"],
    }


def importing(package_parent: Path) -> dict[str, str]:
    """The environment in which package_parent's pl_dsl is the one imported, and no bytecode is written."""
    return {**os.environ, "PYTHONPATH": str(package_parent), "PYTHONDONTWRITEBYTECODE": "1"}


def cpu_seconds(command: list[str], package_parent: Path) -> float:
    """User plus system CPU seconds of one run of command, with package_parent's pl_dsl imported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=importing(package_parent), cwd=package_parent, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10, help="runs of each command with each copy (default 10)")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more")
    with tempfile.TemporaryDirectory() as folder:
        copies = {"bytecode": Path(folder) / "bytecode", "source only": Path(folder) / "source"}
        for parent in copies.values():
            shutil.copytree(REPO / "pl_dsl", parent / "pl_dsl", ignore=shutil.ignore_patterns("__pycache__"))
        compileall.compile_dir(copies["bytecode"] / "pl_dsl", quiet=1)
        for parent in copies.values():  # the copy is what the processes import, not this checkout
            shown = subprocess.run([sys.executable, "-c", "import pl_dsl; print(pl_dsl.__file__)"], cwd=parent,
                                   env=importing(parent), capture_output=True, text=True)
            if Path(shown.stdout.strip()).parent != parent / "pl_dsl":
                sys.exit(f"the copy in {parent} is not the pl_dsl imported: {shown.stdout}{shown.stderr}")
            cpu_seconds(commands(parent)["snakemake -n"], parent)  # Snakemake's first run creates .snakemake/
        print(f"CPU seconds a process, median of {args.repeat} (pl_dsl with its bytecode / source only):")
        for name in commands(Path(folder)):
            spent: dict[str, list[float]] = {label: [] for label in copies}
            for attempt in range(args.repeat):
                order = list(copies) if attempt % 2 == 0 else list(reversed(copies))
                for label in order:
                    spent[label].append(cpu_seconds(commands(copies[label])[name], copies[label]))
            with_bytecode, without = (statistics.median(spent[label]) for label in copies)
            print(f"  {name:16} {with_bytecode:5.2f} s / {without:5.2f} s: {without - with_bytecode:4.2f} s saved, "
                  f"{without / with_bytecode:.2f}x")


if __name__ == "__main__":
    main()
