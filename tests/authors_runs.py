"""The runs the authors' launch scripts start, read by running the scripts themselves.

`bash/train.sh`, `bash/cossim.sh` and `bash/map.sh` (../shared/reference/perturbation-learning,
the authors' commit 28a4ff9) each call a function `main` once per configuration. We run each
script with that function replaced by one that prints the configuration, so every loop, list,
fixed value and `seed=` line counts exactly as the authors wrote it, and compare the result
with what our specs expand to, as tuples of the values that define a run.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pl_dsl.spec.check import Run

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "perturbation-learning"
# The variables main() reads, printed by our replacement of it.
VARIABLES = ("mode", "dataset_name", "in_dim", "data_gen_method", "n_sample", "hidden_dim", "slope", "loss_name",
             "lr_1", "lr_2", "epochs_1", "epochs_2", "perturbation_size", "seed", "on_original", "for_cossim",
             "for_map", "limits")
REAL_KINDS = {"MNIST": "mnist", "FMNIST": "fmnist"}


@dataclass(frozen=True, order=True)
class RunTuple:
    """One run as the scripts define it: (kind, scenario, d, N, m, gamma, loss, lr_f, lr_g, T_f, T_g, eps, seed).
    Real data sets use every sample of their two classes: d and N are None."""

    kind: str
    scenario: str
    d: int | None
    n: int | None
    m: int
    gamma: float
    loss: str
    lr_f: float
    lr_g: float
    t_f: int
    t_g: int
    eps: float
    seed: int

    @property
    def setting(self) -> str:
        """The paper's name of the accuracy setting this run belongs to (shifted_gauss_a, mnist_b, ...)."""
        return f"{self.kind}_{self.scenario}"


@dataclass(frozen=True)
class ScriptRun:
    """One call of main(): the run, whether it is a map or direction run, and a map's limits."""

    run: RunTuple
    for_map: bool
    for_cossim: bool
    limits: tuple[float, float] | None


def _harness(script: str) -> str:
    """The script with its main() replaced by one that prints the variables it would use."""
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^main\s*\(\)\s*\{", line))
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == "}")
    fields = " ".join(f'{name}=\\"${{{name}:-}}\\"' for name in VARIABLES)
    replacement = ["main(){", f'  echo "RUN {fields}"', "}"]
    return "\n".join(lines[:start] + replacement + lines[end + 1:]) + "\n"


def script_runs(name: str, reference: Path = REFERENCE) -> list[ScriptRun]:
    """Every call of main() in bash/<name>.sh, in order (duplicates kept)."""
    harness = _harness((reference / "bash" / f"{name}.sh").read_text())
    with tempfile.TemporaryDirectory() as folder:  # the scripts create logs/ and data/ where they run
        done = subprocess.run(["bash", "-c", harness, name, "0"], cwd=folder, capture_output=True, text=True,
                              timeout=120, check=True)
    return [_parse(line) for line in done.stdout.splitlines() if line.startswith("RUN ")]


def _parse(line: str) -> ScriptRun:
    values = dict(re.findall(r'(\w+)="([^"]*)"', line))
    real = values["mode"] == "real"
    run = RunTuple(
        kind=REAL_KINDS[values["dataset_name"]] if real else values["data_gen_method"],
        scenario="b" if values["on_original"] else "a",
        d=None if real else int(values["in_dim"]), n=None if real else int(values["n_sample"]),
        m=int(values["hidden_dim"]), gamma=float(values["slope"]), loss=values["loss_name"],
        lr_f=float(values["lr_1"]), lr_g=float(values["lr_2"]), t_f=int(values["epochs_1"]),
        t_g=int(values["epochs_2"]), eps=float(values["perturbation_size"]), seed=int(values["seed"]))
    limits = tuple(float(x) for x in values["limits"].split()) if values["limits"] else None
    return ScriptRun(run, bool(values["for_map"]), bool(values["for_cossim"]), limits)  # type: ignore[arg-type]


# What every run of the scripts shares (train.py and utils/), checked on each of our runs.
REFERENCE_FIXED = {
    "optimizer": "sgd", "momentum": 0.9, "schedule": "plateau",  # SGD(lr, .9), ReduceLROnPlateau() defaults
    "norm": "l2", "attack_steps": 1, "targets": "random",  # one normalised gradient step, randint targets
    "readout": "gaussian", "bias": True,  # TwoLayerNet: bias N(0, 1), frozen readout N(0, 1/m)
}


def our_tuple(run: Run) -> RunTuple:
    """A run of one of our specs as the scripts would write it."""
    config = run.config
    real = config.data.kind in REAL_KINDS.values()
    if config.train_f.loss != config.train_g.loss:
        raise ValueError(f"run {run.id}: f and g use different losses; the scripts use one loss_name for both")
    return RunTuple(config.data.kind, config.scenario, None if real else config.data.dim,
                    None if real else config.data.n_train, config.network.width, config.network.leaky_slope,
                    config.train_f.loss, config.train_f.lr, config.train_g.lr, config.train_f.steps,
                    config.train_g.steps, config.attack.eps, config.seed)


def fixed_differences(run: Run) -> list[str]:
    """Where a run of ours departs from what every run of the scripts shares."""
    c = run.config
    have = {"optimizer": c.train_f.optimizer, "momentum": c.train_f.momentum, "schedule": c.train_f.schedule,
            "norm": c.attack.norm, "attack_steps": c.attack.steps, "targets": c.attack.targets,
            "readout": c.network.readout, "bias": c.network.bias}
    out = [f"{name} = {have[name]!r} (scripts: {want!r})" for name, want in REFERENCE_FIXED.items() if have[name] != want]
    if (c.train_g.optimizer, c.train_g.momentum, c.train_g.schedule) != (c.train_f.optimizer, c.train_f.momentum,
                                                                        c.train_f.schedule):
        out.append("g is trained differently from f (scripts: the same SGD and schedule for both)")
    synthetic_test = 1000  # train.py: gen_data_and_labels(False) draws 1000 fresh samples
    if c.data.kind in REAL_KINDS.values():
        if c.data.n_train is not None or c.data.n_test is not None:
            out.append("a subsample of the real data set (scripts: every sample of the two classes)")
    else:
        if c.data.n_test != synthetic_test:
            out.append(f"n_test = {c.data.n_test} (scripts: {synthetic_test})")
        if c.data.kind == "shifted_gauss" and c.data.mean_shift != 0.3:
            out.append(f"mean_shift = {c.data.mean_shift} (scripts: 0.3)")
    return [f"run {run.id}: {text}" for text in out]


def differences(ours: Iterable[RunTuple], theirs: Iterable[RunTuple], label: str) -> str:
    """The runs only one side has, one per line ('' when the sets are equal)."""
    ours_set, theirs_set = set(ours), set(theirs)
    missing, extra = sorted(theirs_set - ours_set), sorted(ours_set - theirs_set)
    if not missing and not extra:
        return ""
    lines = [f"{label}: {len(missing)} of the authors' runs missing, {len(extra)} runs that are not theirs"]
    lines += [f"  missing: {run}" for run in missing[:40]] + [f"  not theirs: {run}" for run in extra[:40]]
    return "\n".join(lines)
