"""train_f: the classifier f, trained on clean data D with the true labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pl_dsl.engine.registry import Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import BaseParams, fit_together, passes_cost, run_dataset, training_of, working_bytes


@dataclass(frozen=True)
class TrainFParams(BaseParams):
    train: TrainingConfig


def compute_together(ctx: UnitContext, members: Sequence[TrainFParams]) -> None:
    """The f of each member, trained on its own D (members of one seed and data share it)."""
    sets = [run_dataset(ctx, m) for m in members]
    fit_together(ctx, members, "f", [(d.x, d.y) for d in sets], [m.train for m in members])


SECTIONS = (Section("training", TrainingConfig, schema_beside(__file__), in_run=False),
            training_of("train_f", schema_beside(__file__)))

STAGE = Stage(
    name="train_f", params=TrainFParams, rename={"train": "train_f"}, compute_together=compute_together,
    trains="train", cost=lambda params: passes_cost(params, params.train.steps),
    memory=lambda params: working_bytes(params, 1),
    writes={"model.pt": "the trained weights of f and its final training loss"},
    metrics={}, batch_size=16, sections=SECTIONS,
)
