"""How many runs of pl-dsl's own mode reach the regimes where the authors' arithmetic departs
from pl-dsl's (docs/spec.md, "Their arithmetic"), and whether a point's best over the
learning-rate grid would move under theirs. Reads results tables already computed:

    python benchmarks/reference_regimes.py [--results DIR] EXPERIMENT...

Per experiment: its runs, those with the logistic loss, those where their fp32 loss overflows at
the attack (a margin y_adv f(x) below -88.72: their r_n of that sample is NaN, so g and its scores
are NaN and 0), and those where their normalisation floor shortens some r_n (a loss gradient
shorter than 1e-12). Then each point (the runs that differ only in their learning rates) whose
best g_clean_acc or agreement comes from an overflowing run: under their arithmetic that run scores
0, and the point falls to its best other run.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from pl_dsl.engine.paths import Layout  # noqa: E402
from pl_dsl.project import project_registry  # noqa: E402
from pl_dsl.report.results import STATUS_COLUMNS, read_table  # noqa: E402

OVERFLOW_MARGIN = -88.72  # log(float32 max): exp(-s) is inf below this margin
FLOOR = 1e-12  # F.normalize's floor on the gradient's norm
LEARNING_RATES = ("train_f.lr", "train_g.lr")
SCORED = ("g_clean_acc", "agreement")


def regimes(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[dict[str, str]], list[dict[str, str]]]:
    """(logistic runs, those overflowing at the attack, those under the floor) of a results table."""
    logistic = [r for r in rows if r.get("train_f.loss", r.get("training.loss", "")) == "logistic"
                and r.get("target_margin_min")]
    overflow = [r for r in logistic if float(r["target_margin_min"]) < OVERFLOW_MARGIN]
    floor = [r for r in logistic if r.get("grad_norm_min") and float(r["grad_norm_min"]) < FLOOR]
    return logistic, overflow, floor


def moved_points(rows: list[dict[str, str]], overflow: list[dict[str, str]],
                 metric_names: set[str]) -> tuple[int, list[str]]:
    """How many points hold an overflowing run, and those whose best over the learning rates
    comes from one, with both values."""
    ignored = metric_names | set(STATUS_COLUMNS) | {"run", "device", *LEARNING_RATES}
    points: dict[tuple[tuple[str, str], ...], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        points[tuple((k, v) for k, v in row.items() if k not in ignored and not k.startswith("time_"))].append(row)
    bad = {row["run"] for row in overflow}
    found = []
    touched = sum(any(m["run"] in bad for m in members) for members in points.values())
    for key, members in points.items():
        for metric in SCORED:
            scored = [(float(m[metric]), m["run"]) for m in members if m.get(metric)]
            if not scored:
                continue
            best, best_run = max(scored)
            theirs = max((0.0 if run in bad else value for value, run in scored), default=0.0)
            if best_run in bad and theirs != best:
                where = ", ".join(f"{k}={v}" for k, v in key if k in ("panels",) or "." in k or k == "seed")
                found.append(f"{metric} {best:.3f} -> {theirs:.3f} at {where}")
    return touched, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiments", nargs="+")
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    layout = Layout(Path(args.results))
    metric_names = {name for stage in project_registry() for name in stage.metrics}
    print("experiment | runs | logistic | overflow at the attack | under the floor | points holding an overflow | "
          "points that move")
    for name in args.experiments:
        rows = read_table(layout.table(name))
        logistic, overflow, floor = regimes(rows)
        touched, moved = moved_points(rows, overflow, metric_names)
        print(f"{name} | {len(rows)} | {len(logistic)} | {len(overflow)} | {len(floor)} | {touched} | {len(moved)}")
        for line in moved:
            print(f"    {line}")


if __name__ == "__main__":
    main()
