"""Run-for-run equality of the full-tier paper specs with the authors' launch scripts.

Each accuracy spec experiments/paper/<setting>.yaml expands to exactly the runs bash/train.sh
starts for that setting, direction.yaml to those of bash/cossim.sh, decision_maps.yaml to those
of bash/map.sh (with their axis limits). The scripts are run with their `main` replaced by one
that prints its variables (tests/authors_runs.py). Where the reference folder is absent the
tests skip and say so; CI has it.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import pytest
from authors_runs import REFERENCE, RunTuple, ScriptRun, differences, fixed_differences, our_tuple, script_runs

from pl_dsl.spec.check import Experiment, load_experiment

from conftest import REPO

pytestmark = pytest.mark.skipif(not (REFERENCE / "bash" / "train.sh").exists(),
                                reason=f"the authors' scripts are not at {REFERENCE}")
PAPER = REPO / "experiments" / "paper"
SETTINGS = ["shifted_gauss_a", "shifted_gauss_b", "gauss_a", "gauss_b", "mnist_a", "mnist_b", "fmnist_a", "fmnist_b"]


@cache
def scripts(name: str) -> tuple[ScriptRun, ...]:
    return tuple(script_runs(name))


@cache
def ours(stem: str) -> Experiment:
    return load_experiment(PAPER / f"{stem}.yaml")


def our_runs(stem: str) -> set[RunTuple]:
    experiment = ours(stem)
    problems = [line for run in experiment.runs for line in fixed_differences(run)]
    assert not problems, "\n".join(problems[:20])
    return {our_tuple(run) for run in experiment.runs}


def test_the_harness_reads_every_call_of_main() -> None:
    # Counted in the scripts by hand: train.sh calls main 3807 times (3677 distinct runs, 8 of them
    # the decision-map runs flagged -m); cossim.sh 326; map.sh 8.
    train = scripts("train")
    assert len(train) == 3807 and len({call.run for call in train}) == 3677
    assert sum(call.for_map for call in train) == 8
    assert len(scripts("cossim")) == 326 and len(scripts("map")) == 8


@pytest.mark.parametrize("setting", SETTINGS)
def test_each_accuracy_spec_is_exactly_the_runs_of_train_sh(setting: str) -> None:
    by_setting: dict[str, set[RunTuple]] = defaultdict(set)
    for call in scripts("train"):
        if not call.for_map:  # the map runs are decision_maps.yaml's (the one that is also a panel run stays)
            by_setting[call.run.setting].add(call.run)
    theirs = by_setting[setting]
    assert theirs, f"no runs of {setting} in train.sh"
    assert not (found := differences(our_runs(setting), theirs, f"{setting}.yaml vs bash/train.sh")), found


def test_the_direction_spec_is_exactly_the_runs_of_cossim_sh() -> None:
    theirs = {call.run for call in scripts("cossim")}
    assert not (found := differences(our_runs("direction"), theirs, "direction.yaml vs bash/cossim.sh")), found


def test_the_decision_map_spec_is_exactly_the_runs_of_map_sh_with_their_limits() -> None:
    theirs = {(call.run, call.limits * 2) for call in scripts("map") if call.limits}
    assert not (found := differences({run for run, _ in theirs}, our_runs("decision_maps"), "decision_maps.yaml")), found
    experiment = ours("decision_maps")
    mine = {(our_tuple(run), tuple(run.config.decision_map.limits)) for run in experiment.runs}
    assert mine == theirs, sorted(mine ^ theirs)
    assert {run.config.decision_map.resolution for run in experiment.runs} == {400}  # map.py's default


def test_a_changed_spec_is_reported_run_by_run() -> None:
    # The comparison names what differs, in both directions: drop eps = 0.0031 (d = 10 in both d panels,
    # 4 learning-rate pairs each) and add a run the authors never ran.
    theirs = {call.run for call in scripts("train") if call.run.setting == "shifted_gauss_a" and not call.for_map}
    changed = {run for run in our_runs("shifted_gauss_a") if run.eps != 0.0031}
    report = differences(changed | {RunTuple("shifted_gauss", "a", 10, 1000, 100, 0.0, "identity", 1.0, 1.0, 1000, 1000,
                                             0.0032, 0)}, theirs, "edited")
    assert "8 of the authors' runs missing, 1 runs that are not theirs" in report
    assert "eps=0.0031" in report and "eps=0.0032" in report
