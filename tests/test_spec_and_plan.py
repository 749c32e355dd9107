"""Sweep expansion, run resolution and stage identities (which runs share which artifacts)."""

from __future__ import annotations

import math

import pytest

from pl_dsl.engine.plan import FUSED, batch_seconds, build_plan, estimated_seconds, run_units
from pl_dsl.spec.check import check_text, load_experiment
from pl_dsl.stages import REGISTRY

from conftest import REPO

BASE = """
name: t
data: {kind: shifted_gauss, dim: 16, n_train: 20, n_test: 10}
training: {steps: 3}
"""


def expand(extra: str, base: str = BASE):  # type: ignore[no-untyped-def]
    experiment, errors = check_text(base + extra, "t.yaml")
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


def test_runs_resolved_once_per_axis_value_equal_each_run_resolved_on_its_own() -> None:
    """The sweep resolver reuses a section across runs whose swept values it does not read; every
    run must still be what resolving its own spec from scratch gives (eps from the swept d through
    the data section, shared training through train_f/train_g, a swept data kind, a panel's set)."""
    import copy

    from pl_dsl.hashing import stable_hash
    from pl_dsl.spec.compose import load_composed
    from pl_dsl.spec.sections import resolve_run
    from pl_dsl.spec.sweeps import set_path

    text = """
seeds: [0, 1]
attack: {eps_per_coord: 0.01}
sweep:
  grid:
    data.dim: [4, 9]
    training.lr: [0.1, 0.3]
    train_g.steps: [2, 5]
    network.leaky_slope: [0.0, 0.5]
    data.kind: [shifted_gauss, gauss]
"""
    exp = expand(text)
    assert len(exp.runs) == 2 ** 6
    raw = load_composed(BASE + text, "t.yaml").data
    for run in exp.runs:
        effective, written = copy.deepcopy(exp.spec), copy.deepcopy(raw)
        for path, value in run.varied.items():
            set_path(effective, path, value)
            set_path(written, path, value)
        alone = resolve_run(REGISTRY.sections, effective, written)
        assert alone == run.config
        assert "r" + stable_hash(REGISTRY.run_identity(alone), 16) == run.id
    eps = {(run.config.data.dim, run.config.attack.eps) for run in exp.runs}
    assert eps == {(4, 0.01 * 2.0), (9, 0.01 * 3.0)}
    assert {(r.config.train_f.lr, r.config.train_g.lr, r.config.train_g.steps) for r in exp.runs} == {
        (lr, lr, steps) for lr in (0.1, 0.3) for steps in (2, 5)}
    assert {r.config.data.kind for r in exp.runs} == {"shifted_gauss", "gauss"}


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


def test_encoded_parts_hash_as_the_data_they_encode() -> None:
    """stable_hash places Encoded parts as they are: the hash must be the one of the data itself
    (unit keys and run ids stay those of stores made before), with every kind of JSON value."""
    from pl_dsl.hashing import encoded, stable_hash

    params = {"z": [1, 2.5, {"b": None, "a": "quote \" é"}], "a": True, "n": {"3": 1e-12}}
    whole = {"stage": "train_g", "code": "abc.v2", "inputs": {"f": "0123", "attack": "4567"}, "params": params}
    assert stable_hash({**whole, "params": encoded(params)}, 16) == stable_hash(whole, 16)  # mixed
    assert stable_hash({k: encoded(v) for k, v in whole.items()}, 16) == stable_hash(whole, 16)  # all encoded
    assert stable_hash({**whole, "params": encoded({**params, "a": False})}, 16) != stable_hash(whole, 16)


def test_cached_encodings_keep_what_json_tells_apart() -> None:
    """JsonCache encodes equal scalars once: 0.0 and -0.0 (equal as numbers, written apart in
    JSON), 1 and True, must keep their own encodings, each the plain JSON one."""
    from dataclasses import replace

    from pl_dsl.hashing import encoded
    from pl_dsl.spec.config import JsonCache, to_json

    training = expand("seeds: [0]\n").runs[0].config.train_f
    cache = JsonCache()
    configs = [replace(training, lr=lr) for lr in (0.0, -0.0, 1.0, 0.0)] + [replace(training, steps=1)]
    texts = [cache.encoded(config) for config in configs]
    assert texts == [encoded(to_json(config)) for config in configs]
    assert len(set(texts[:3])) == 3


def test_units_built_once_per_point_equal_units_built_run_by_run() -> None:
    """The plan builds a stage's parameters once per distinct sections and a unit once per
    parameters and inputs; every run must get exactly the units it gets on its own, stacked or not."""
    from pl_dsl.engine.plan import UnitMemo
    from pl_dsl.hashing import stable_hash
    from pl_dsl.spec.config import to_json

    exp = expand("""
seeds: [0, 1]
attack: {eps_per_coord: 0.01}
sweep:
  grid:
    data.dim: [4, 9]
    train_f.lr: [0.1, 0.3]
    train_g.lr: [0.2, 0.4]
    train_g.steps: [2, 3]
""")
    for stack in ("auto", "on"):
        memo = UnitMemo()
        for run in exp.runs:
            shared, alone = run_units(run, REGISTRY, stack, memo), run_units(run, REGISTRY, stack)
            assert list(shared) == list(alone)
            for stage, unit in shared.items():
                mine = alone[stage]
                assert (unit.key, unit.group, unit.trajectory, unit.params, unit.inputs, unit.cost, unit.stack) == \
                    (mine.key, mine.group, mine.trajectory, mine.params, mine.inputs, mine.cost, mine.stack)
                # the key and the trajectory as defined: hashes of the whole data, as stores hold them
                params = REGISTRY[stage].select(run.config)
                assert unit.key == stable_hash({"stage": stage, "code": REGISTRY[stage].fingerprint, "inputs": unit.inputs,
                                                "params": to_json(params, identity=True)}, 16)
                assert unit.trajectory == stable_hash({"stage": stage, "inputs": unit.inputs, "device": unit.device, "params":
                                                       to_json(REGISTRY[stage].group_key(params, keep_lr=True))}, 16)
                trajectory = to_json(REGISTRY[stage].group_key(params, keep_lr=True))
                if unit.stack:  # nets stacked by shape: a group whatever the inputs
                    assert unit.group == stable_hash({"stage": stage, "device": unit.device, "params":
                                                      to_json(REGISTRY[stage].group_key(params, stack=True))}, 16)
                else:
                    group = to_json(REGISTRY[stage].group_key(params, keep_lr=unit.device == "cpu"))
                    assert unit.group == (unit.trajectory if group == trajectory else stable_hash(
                        {"stage": stage, "inputs": unit.inputs, "device": unit.device, "params": group}, 16))
        assert len(memo.units) < 4 * len(exp.runs)  # f and the attack are shared across g's lrs and steps


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
    f_units = plan.experiments[exp.name].units["train_f"]
    assert len(f_units) == 2 and all(len(u.runs) == 3 for u in f_units)


def test_a_g_learning_rate_sweep_shares_f_and_the_attack() -> None:
    exp = expand("""
sweep:
  grid:
    train_g.lr: [1.0, 0.1]
""", "name: steps\ndata: {kind: shifted_gauss}")
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
    plan = build_plan([exp], REGISTRY, {"train_f": 1, "attack": 4, "train_g": 4, "evaluate": 100}, min_batches=2,
                      fuse_seconds=0)
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


def test_small_components_are_fused_whole_and_large_wide_ones_are_not() -> None:
    exp = load_experiment(REPO / "tests/specs/valid/tiny.yaml")
    plan = build_plan([exp], REGISTRY, min_batches=2)
    assert set(plan.experiments[exp.name].batches) >= {FUSED} and not plan.experiments[exp.name].batches["train_f"]
    fused = [b for (rule, _), b in plan.batches.items() if rule == FUSED]
    assert len(fused) == 2 and not any(b.needs for b in fused)
    for batch in fused:  # whole components, in stage order: every input is in the same batch
        keys = [u.key for u in batch.units]
        for position, unit in enumerate(batch.units):
            assert all(key in keys[:position] for key in unit.inputs.values())
    # Many long attacks and g trainings per f could run side by side as stage jobs: not fused.
    wide = expand("""
data: {kind: shifted_gauss, dim: 1000, n_train: 5000}
network: {width: 1000}
training: {steps: 1000}
sweep:
  grid:
    attack.eps: [0.5, 1.0, 2.0, 4.0]
""", "name: wide")
    plan = build_plan([wide], REGISTRY, min_batches=2)
    assert not plan.experiments[wide.name].batches.get(FUSED)


def test_step_sweeps_share_a_batch_and_cost_their_longest_training() -> None:
    exp = expand("""
data: {kind: shifted_gauss, dim: 1000, n_train: 5000}
network: {width: 1000}
training: {steps: 100}
sweep:
  grid:
    train_g.steps: [10, 20, 50, 100]
    train_g.lr: [1.0, 0.1]
""", "name: steps")
    plan = build_plan([exp], REGISTRY, min_batches=2, fuse_seconds=0)
    g_batches = [b for (rule, _), b in plan.batches.items() if rule == "train_g"]
    assert len(g_batches) == 1 and len(g_batches[0].units) == 8 and len({u.group for u in g_batches[0].units}) == 1
    assert len({u.trajectory for u in g_batches[0].units}) == 2  # one training per learning rate
    longest = max(u.cost for u in g_batches[0].units)
    assert batch_seconds(g_batches[0].units) == pytest.approx(estimated_seconds(2 * longest))
