"""What planning a large sweep costs: `pl-dsl validate`, `pl-dsl runs --summary`, `pl-dsl run -n`
and `pl-dsl status` of one sweep at 10^3, 10^4 and 10^5 runs, each command's wall time and peak
memory, and how they grow from size to size (a per-run cost grows 10x per row; per-axis costs
less). Nothing is trained: the dry run plans, `status` reads an empty store.

The sweep is the quick start's setting (Shifted Gauss (a), d=100, N=1000): 10 widths x 10 lr_f
x 10 lr_g, over 1, 10 or 100 seeds, `max_runs: 100000`. Goals (issue "Costs that scale"): at
10^5 runs, validate <= 10 s and run -n <= 30 s, <= 1 GB.

With --baseline DIR (a checkout of an earlier pl-dsl, `git worktree add DIR COMMIT`), each
command is also run with that code (its package first on PYTHONPATH), right after this one's, and
the ratio printed: side by side, so that the machine's swings fall on both alike.
--repeat N runs each command N times and takes the best (with a baseline, alternating which
goes first).
Usage: python benchmarks/planning.py [--sizes 1000,10000,100000] [--repeat N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """name: plan{runs}
max_runs: 100000
data: {{kind: shifted_gauss, dim: 100, n_train: 1000, n_test: 1000, mean_shift: 0.3}}
network: {{width: 100, leaky_slope: 0.0}}
training: {{loss: identity, steps: 1000, lr: 1.0, optimizer: sgd, momentum: 0.9, schedule: plateau}}
attack: {{norm: l2, eps: 0.01}}
scenario: a
seeds: [{seeds}]
sweep:
  grid:
    network.width: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    train_f.lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    train_g.lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
"""
PL_DSL = [sys.executable, "-m", "pl_dsl"]


def measured(command: list[str], cwd: Path, code: Path | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak resident memory in MB (the command and the processes it waited for,
    Snakemake's included) and the output of one command (with the pl-dsl of checkout `code`)."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code else None
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if process.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def _sizes(text: str) -> list[int]:
    """Comma-separated run counts, each a positive multiple of 1000."""
    try:
        sizes = [int(size) for size in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give run counts such as 1000,10000") from None
    if any(size < 1000 or size % 1000 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: each run count is a multiple of 1000 (1000 x seeds)")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000", type=_sizes,
                        help="run counts, each 1000 x a number of seeds (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command, the best taken (default 1)")
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier pl-dsl to run each command with too")
    args = parser.parse_args()
    sizes: list[int] = args.sizes
    baseline: Path | None = args.baseline.resolve() if args.baseline else None
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: give 1 or more")
    if baseline and not (baseline / "pl_dsl" / "__init__.py").exists():
        parser.error(f"--baseline {args.baseline}: no pl-dsl checkout there (no pl_dsl/__init__.py); "
                     "`git worktree add DIR COMMIT` makes one")
    commands = {
        "validate": lambda spec: [*PL_DSL, "validate", spec],
        "runs --summary": lambda spec: [*PL_DSL, "runs", "--summary", spec],
        "run -n": lambda spec: [*PL_DSL, "run", "-n", spec],
        "status": lambda spec: [*PL_DSL, "status", spec],
    }
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    jobs = ""
    with tempfile.TemporaryDirectory(prefix="pl-dsl-planning-") as tmp:
        for runs in sizes:
            folder = Path(tmp) / str(runs)
            folder.mkdir()
            spec = folder / f"plan{runs}.yaml"
            spec.write_text(SPEC.format(runs=runs, seeds=", ".join(map(str, range(runs // 1000)))))
            for name, command in commands.items():
                # best of --repeat; with a baseline the two alternate, each first every other time
                ours: list[tuple[float, float, str]] = []
                theirs: list[tuple[float, float, str]] = []
                for attempt in range(args.repeat):
                    for code in ((None, baseline) if attempt % 2 == 0 else (baseline, None)) if baseline else (None,):
                        (theirs if code else ours).append(measured(command(str(spec)), folder, code))
                seconds, megabytes, text = min(ours)
                rows[name].append((seconds, megabytes))
                line = f"{runs:>7} runs  {name:15s} {seconds:7.1f} s {megabytes:7.0f} MB"
                if baseline:
                    before, before_mb, _ = min(theirs)
                    line += f"   baseline {before:7.1f} s {before_mb:7.0f} MB: {before / seconds:.2f}x faster"
                print(line, flush=True)
                if name == "run -n":
                    found = re.search(r"^total\s+(\d+)", text, re.MULTILINE)
                    jobs = f"Snakemake jobs planned at {runs} runs: {found.group(1) if found else '?'} " \
                           "(fused batches of units, and the table)"
    print()
    header = "".join(f"{size:>16}" for size in sizes)
    print(f"{'command':15s}{header}   growth per 10x")
    for name, values in rows.items():
        cells = "".join(f"{s:9.1f} s{m:5.0f}M" for s, m in values)
        growth = " ".join(f"{b[0] / a[0]:.1f}x" for a, b in zip(values, values[1:]))
        print(f"{name:15s}{cells}   {growth}")
    print(jobs)


if __name__ == "__main__":
    main()
