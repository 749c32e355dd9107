"""The runs of the authors' bash/train.sh (../shared/reference/perturbation-learning), as the
arguments `authors_train.run_theirs` takes: their script is run with `python3` standing for a
recorder of its command lines, so every run their loops launch is listed, in their order, and
none is hand-picked. `drawn` takes a fixed seeded draw among the runs cheap enough for a test."""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
from pathlib import Path

from authors_train import REFERENCE

# Real data: every sample of their two classes (MNIST 1 vs 2: 12 700; Fashion-MNIST 0 vs 9: 12 000).
REAL_SAMPLES = {"MNIST": 12700, "FMNIST": 12000}
# A run's seconds on one CPU core, estimated: their script's start (imports, Lightning) plus its
# multiply-adds (3 passes a step over N x d x m, f and g) at this rate, a round figure below what
# full-batch autograd reaches on these shapes here.
START_SECONDS, MULTIPLY_ADDS_PER_SECOND = 6.0, 5e9


def train_sh_runs() -> list[dict]:
    """Every distinct train.py command line of their bash/train.sh, as run_theirs arguments."""
    with tempfile.TemporaryDirectory() as folder:
        recorder, lines = Path(folder) / "bin" / "python3", Path(folder) / "lines.txt"
        recorder.parent.mkdir()
        recorder.write_text(f'#!/bin/sh\necho "$@" >> {lines}\n')
        recorder.chmod(0o755)
        environment = {**os.environ, "PATH": f"{recorder.parent}:{os.environ['PATH']}"}
        subprocess.run(["bash", str(REFERENCE / "bash" / "train.sh"), "0"], cwd=folder, env=environment,
                       check=True, capture_output=True)
        commands = list(dict.fromkeys(lines.read_text().splitlines()))
    return [_arguments(command.split()[1:]) for command in commands]


def _arguments(words: list[str]) -> dict:
    """train.py's argparse, for their command lines: ten positionals, flags, the data subcommand."""
    names = ("hidden_dim", "slope", "loss_name", "lr_1", "lr_2", "epochs_1", "epochs_2", "perturbation_size", "seed")
    kinds = (int, float, str, float, float, int, int, float, int)
    arguments: dict = {name: kind(word) for name, kind, word in zip(names, kinds, words)}
    rest = words[10:]
    arguments["on_original"] = "-o" in rest
    data = [word for word in rest if not word.startswith("-")]
    if data[0] == "synthetic":
        arguments.update(in_dim=int(data[1]), data_gen_method=data[2], n_sample=int(data[3]))
    else:
        arguments["dataset_name"] = data[1]
    return arguments


def estimated_seconds(arguments: dict) -> float:
    """What one run of their script takes on one core, roughly (see MULTIPLY_ADDS_PER_SECOND)."""
    samples = arguments.get("n_sample") or REAL_SAMPLES[arguments["dataset_name"]]
    dim = arguments.get("in_dim", 784)
    steps = arguments["epochs_1"] + arguments["epochs_2"] + 1
    return START_SECONDS + 3 * steps * samples * dim * arguments["hidden_dim"] / MULTIPLY_ADDS_PER_SECOND


def drawn(count: int, seed: int, under_seconds: float = 30.0) -> list[dict]:
    """`count` runs of train.sh drawn with random.Random(seed) among those estimated under the limit."""
    cheap = [run for run in train_sh_runs() if estimated_seconds(run) < under_seconds]
    return random.Random(seed).sample(cheap, count)
