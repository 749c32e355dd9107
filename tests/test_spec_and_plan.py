"""Sweep expansion, run resolution and stage identities (which runs share which artifacts)."""

from __future__ import annotations

import math

import pytest

from pl_dsl.engine.plan import build_plan, run_units
from pl_dsl.spec.check import check_text, load_experiment
from pl_dsl.stages import REGISTRY

from conftest import REPO

BASE = """
name: t
data: {dim: 16, n_train: 20, n_test: 10}
training: {steps: 3}
"""


def expand(extra: str):  # type: ignore[no-untyped-def]
    experiment, errors = check_text(BASE + extra, "t.yaml")
    assert not errors, errors
    return experiment


def test_grid_zip_and_seeds_compose_in_order() -> None:
    exp = expand("""
seeds: [3, 4]
sweep:
  grid:
    network.width: [5, 6, 7]
  zip:
    - data.dim: [4, 9]
      data.n_train: [30, 40]
""")
    assert len(exp.runs) == 3 * 2 * 2
    assert exp.axes == ["network.width", "data.dim", "data.n_train", "seed"]
    first, last = exp.runs[0], exp.runs[-1]
    assert first.varied == {"network.width": 5, "data.dim": 4, "data.n_train": 30, "seed": 3}
    assert last.varied == {"network.width": 7, "data.dim": 9, "data.n_train": 40, "seed": 4}
    assert {(r.spec["data"]["dim"], r.spec["data"]["n_train"]) for r in exp.runs} == {(4, 30), (9, 40)}
    assert len({r.id for r in exp.runs}) == len(exp.runs)


def test_eps_per_coordinate_follows_the_swept_dimension() -> None:
    exp = expand("""
attack: {eps_per_coord: 0.01}
sweep:
  grid:
    data.dim: [4, 100]
""")
    assert [r.spec["attack"]["eps"] for r in exp.runs] == pytest.approx([0.01 * 2, 0.01 * 10])
    assert "eps_per_coord" not in exp.runs[0].spec["attack"]


def test_default_eps_is_the_papers_0_001_sqrt_d() -> None:
    exp = expand("")
    assert exp.runs[0].spec["attack"]["eps"] == pytest.approx(0.001 * math.sqrt(16))


def test_overrides_merge_over_shared_training() -> None:
    exp = expand("""
train_g: {lr: 0.25}
""")
    spec = exp.runs[0].spec
    assert spec["train_f"]["lr"] == 1.0 and spec["train_g"]["lr"] == 0.25
    assert spec["train_f"]["steps"] == spec["train_g"]["steps"] == 3
    assert "training" not in spec


def test_run_ids_are_stable_and_ignore_plots_and_descriptions() -> None:
    a = expand("description: one\nseeds: [0, 1]\n")
    b = expand("description: two\nseeds: [0, 1]\nplots: []\n")
    assert [r.id for r in a.runs] == [r.id for r in b.runs]


def test_an_eps_sweep_trains_f_once_per_seed() -> None:
    exp = expand("""
seeds: [0, 1]
sweep:
  grid:
    attack.eps: [0.01, 0.02, 0.03]
""")
    units = [run_units(r, REGISTRY) for r in exp.runs]
    assert len({u["train_f"].key for u in units}) == 2
    assert len({u["attack"].key for u in units}) == 6
    plan = build_plan([exp], REGISTRY)
    f_units = [u for (stage, _), b in plan.batches.items() if stage == "train_f" for u in b.units]
    assert len(f_units) == 2 and all(len(u.runs) == 3 for u in f_units)


def test_a_g_learning_rate_sweep_shares_f_and_the_attack() -> None:
    exp = expand("""
sweep:
  grid:
    train_g.lr: [1.0, 0.1]
""")
    units = [run_units(r, REGISTRY) for r in exp.runs]
    assert units[0]["train_f"].key == units[1]["train_f"].key
    assert units[0]["attack"].key == units[1]["attack"].key
    assert units[0]["train_g"].key != units[1]["train_g"].key


def test_scenario_changes_g_but_not_the_attack() -> None:
    exp = expand("""
sweep:
  grid:
    scenario: [a, b]
""")
    a, b = (run_units(r, REGISTRY) for r in exp.runs)
    assert a["attack"].key == b["attack"].key and a["train_g"].key != b["train_g"].key


def test_batches_cover_every_unit_once_and_respect_sizes() -> None:
    exp = load_experiment(REPO / "tests/specs/valid/tiny.yaml")
    plan = build_plan([exp], REGISTRY, {"train_f": 1, "attack": 4, "train_g": 4, "evaluate": 100}, min_batches=2)
    per_stage: dict[str, list[str]] = {}
    for (stage, _), batch in plan.batches.items():
        per_stage.setdefault(stage, []).extend(u.key for u in batch.units)
    assert len(per_stage["train_f"]) == len(set(per_stage["train_f"])) == 2
    assert len(per_stage["evaluate"]) == 6
    sizes = {stage: [len(b.units) for (s, _), b in plan.batches.items() if s == stage] for stage in per_stage}
    assert sizes["train_f"] == [1, 1] and sorted(sizes["attack"]) == [3, 3] and sizes["evaluate"] == [3, 3]
    for batch in plan.batches.values():
        read = {key for u in batch.units for key in u.inputs.values()}
        provided = {u.key for need in batch.needs for u in plan.batches[need].units}
        assert read and read <= provided or batch.stage == "train_f"
