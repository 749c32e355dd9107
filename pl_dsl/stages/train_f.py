"""train_f: the classifier f, trained on clean data D with the true labels."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.stages.common import Common, fit, passes_cost, working_bytes


@dataclass(frozen=True)
class TrainFParams(Common):
    train: TrainingConfig


def compute(ctx: UnitContext, params: TrainFParams) -> Output:
    data = ctx.dataset(params.data, params.seed)
    return fit(ctx, params, "init_f", data.x, data.y, params.train)


STAGE = Stage(
    name="train_f", params=TrainFParams, rename={"train": "train_f"}, compute=compute,
    cost=lambda params: passes_cost(params, params.train.steps),
    memory=lambda params: working_bytes(params, 1),
    writes={"model.pt": "the trained weights of f and its final training loss"},
    metrics={}, batch_size=16,
)
