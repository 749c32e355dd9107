"""Two jobs may compute the same unit at once (experiments that share it, run together): a job
that finds the unit stored by the other between its own checks counts it as reused instead of
failing."""

from __future__ import annotations

from pathlib import Path

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import build_plan
from pl_dsl.engine.runner import UnitRunner
from pl_dsl.spec.check import load_experiment
from pl_dsl.stages import REGISTRY

from conftest import REPO


class StoredMeanwhile(UnitRunner):
    """A runner whose first look at each f unit finds nothing and whose next finds it stored, as
    when another job stores it in between."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.looked: set[str] = set()
        self.reused: list[str] = []

    def has(self, unit: object) -> bool:
        key = unit.key  # type: ignore[attr-defined]
        if unit.stage == "train_f" and key not in self.looked:  # type: ignore[attr-defined]
            self.looked.add(key)
            return False
        return unit.stage == "train_f" or super().has(unit)  # type: ignore[arg-type, attr-defined]


def test_a_unit_stored_by_another_job_meanwhile_counts_as_reused(tmp_path: Path) -> None:
    plan = build_plan([load_experiment(REPO / "tests/specs/valid/tiny.yaml", REGISTRY)], REGISTRY)
    units = [unit for batch in plan.batches.values() for unit in batch.units if unit.stage == "train_f"]
    runner = StoredMeanwhile(Layout(tmp_path / "results"), REGISTRY)
    done: list[tuple[str, bool]] = []
    assert runner.compute_all(units, lambda unit, computed, seconds: done.append((unit.key, computed))) == 0
    assert sorted(done) == sorted((unit.key, False) for unit in units) and len(units) == 2


class InputStoredLater(UnitRunner):
    """A runner that sees g's first unit before its attack input is stored, as when another job is
    storing that input right then; the input is stored while the runner waits."""

    def __init__(self, *args: object, late: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.late = late  # (stage, key) of the input, stored once the runner starts waiting
        self.waited = False

    def _await_inputs(self, unit: object) -> bool:
        self.waited = True
        stage, units = self.late  # type: ignore[misc]
        self.compute_all(units)
        return super()._await_inputs(unit)  # type: ignore[arg-type]


def test_a_job_whose_input_another_job_is_storing_waits_for_it(tmp_path: Path) -> None:
    """g's units reached before their attack units are stored (by another job): the job waits and
    computes them, instead of calling the input missing."""
    plan = build_plan([load_experiment(REPO / "tests/specs/valid/tiny.yaml", REGISTRY)], REGISTRY)
    every = [unit for batch in plan.batches.values() for unit in batch.units]
    before_g = [u for u in every if u.stage in ("train_f", "attack")]
    g_units = [u for u in every if u.stage == "train_g"]
    layout = Layout(tmp_path / "results")
    UnitRunner(layout, REGISTRY).compute_all([u for u in before_g if u.stage == "train_f"])
    runner = InputStoredLater(layout, REGISTRY, late=("attack", [u for u in before_g if u.stage == "attack"]))
    assert runner.compute_all(g_units) == len(g_units) and runner.waited
