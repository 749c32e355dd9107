"""train_f: the classifier f, trained on clean data D with the true labels."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.stages.common import Common, init_generator


@dataclass(frozen=True)
class TrainFParams(Common):
    train: TrainingConfig


def compute(ctx: UnitContext, params: TrainFParams) -> Output:
    from pl_dsl.science.nn import build_network, train

    data = ctx.dataset(params.data, params.seed)
    model = build_network(params.network, data.x.shape[1], init_generator(params, "init_f")).to(ctx.device)
    losses = train(model, data.x, data.y, params.train)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return Output({"model.pt": {"state": state, "final_loss": losses[-1] if losses else None}})


def cost(params: TrainFParams) -> float:
    return 3.0 * params.train.steps * params.sizes()[0] * params.per_sample()


STAGE = Stage(
    name="train_f", params=TrainFParams, rename={"train": "train_f"}, compute=compute, cost=cost,
    writes={"model.pt": "the trained weights of f and its final training loss"},
    metrics={}, batch_size=16,
)
