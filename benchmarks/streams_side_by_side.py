"""g's accuracy at a base point of the authors' figures over seeds 0-7, three ways side by side:
pl-dsl with its own random streams, pl-dsl with the authors' (`rng: reference`), and the authors'
own train.py (its CPU fp32 port, in the environment .ci/authors_env.sh builds). Each value is the
best over their learning-rate grid, as their figures take it.

    python benchmarks/streams_side_by_side.py [--setting shifted_gauss_a|fmnist_b] [--workdir DIR]

Runs the setting's spec (experiments/reference/) with `pl-dsl run` in DIR (default: a temporary
folder), then their script once per seed and learning-rate pair, and prints one row per seed.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from authors_train import run_theirs, their_dataset_root  # noqa: E402  (the harness the equality test uses)


@dataclass(frozen=True)
class Setting:
    """A base point: the spec that runs it both ways, and their command-line values for it."""

    spec: str  # in experiments/reference/
    lrs: tuple[float, ...]  # their learning-rate grid, for f and for g
    arguments: dict  # their train.py's values, less seed and learning rates
    data_kind: str | None = None  # a real data set: their loader reads the files pl-dsl finds


SETTINGS = {
    "shifted_gauss_a": Setting("streams_base_point.yaml", (1.0, 0.1), {
        "hidden_dim": 100, "slope": 0.0, "loss_name": "identity", "epochs_1": 1000, "epochs_2": 1000,
        "perturbation_size": 0.01, "on_original": False, "in_dim": 100, "data_gen_method": "shifted_gauss",
        "n_sample": 1000}),
    "fmnist_b": Setting("fmnist_b_base_point.yaml", (0.01, 0.001), {
        "hidden_dim": 100, "slope": 0.0, "loss_name": "identity", "epochs_1": 100, "epochs_2": 100,
        "perturbation_size": 0.14, "on_original": True, "dataset_name": "FMNIST"}, data_kind="fmnist"),
}


def theirs(arguments: dict, seed: int, lr_f: float, lr_g: float, folder: Path) -> float:
    """g's accuracy on clean D from the authors' train.py at the base point."""
    given = {**arguments, "seed": seed, "lr_1": lr_f, "lr_2": lr_g}
    return float(run_theirs(given, folder)["metrics"]["adv_acc_for_natural"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="shifted_gauss_a")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    setting = SETTINGS[args.setting]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = REPO / "experiments" / "reference" / setting.spec
        subprocess.run([str(Path(sys.executable).parent / "pl-dsl"), "run", str(spec), "--cores", "2"],
                       cwd=workdir, check=True, capture_output=True)
        name = yaml.safe_load(spec.read_text())["name"]  # its results folder
        with open(workdir / "results" / name / "results.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        best: dict[tuple[str, int], float] = {}
        for row in rows:
            key = (row["rng"], int(row["seed"]))
            best[key] = max(best.get(key, 0.0), float(row["g_clean_acc"]))
        print(f"{'seed':>4}  {'pl-dsl streams':>14}  {'rng: reference':>14}  {'their train.py':>14}")
        columns: dict[str, list[float]] = {"pl-dsl": [], "reference": [], "theirs": []}
        arguments = dict(setting.arguments)
        if setting.data_kind is not None:
            arguments["dataset_root"] = str(their_dataset_root(setting.data_kind, workdir / "their-data"))
        for seed in range(8):
            authors = max(theirs(arguments, seed, lr_f, lr_g, workdir) for lr_f in setting.lrs for lr_g in setting.lrs)
            values = (best[("pl-dsl", seed)], best[("reference", seed)], authors)
            for name, value in zip(columns, values):
                columns[name].append(value)
            print(f"{seed:>4}  {values[0]:>14.3f}  {values[1]:>14.3f}  {values[2]:>14.3f}", flush=True)
        print("median " + "  ".join(f"{statistics.median(v):>14.3f}" for v in columns.values()))
        print(f"largest |reference - theirs| over the seeds: "
              f"{max(abs(a - b) for a, b in zip(columns['reference'], columns['theirs'])):.2e}")


if __name__ == "__main__":
    main()
