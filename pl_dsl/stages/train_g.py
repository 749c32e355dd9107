"""train_g: a fresh network g, trained only on the perturbations (scenario a) or the
adversarial examples (scenario b), with the target labels y_adv."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.stages.common import Common, adversarial_inputs, fit, passes_cost, working_bytes


@dataclass(frozen=True)
class TrainGParams(Common):
    train: TrainingConfig
    scenario: str


def compute(ctx: UnitContext, params: TrainGParams) -> Output:
    data = ctx.dataset(params.data, params.seed)
    attack = ctx.load("attack", "perturbations.pt")
    x_adv = adversarial_inputs(params.scenario, data, attack["delta"])
    return fit(ctx, params, "init_g", x_adv, attack["y_adv"].to(ctx.device), params.train)


STAGE = Stage(
    name="train_g", params=TrainGParams, rename={"train": "train_g"}, compute=compute,
    cost=lambda params: passes_cost(params, params.train.steps),
    memory=lambda params: working_bytes(params, 3),  # x, r_n and g's inputs
    inputs={"attack": "attack"},
    writes={"model.pt": "the trained weights of g and its final training loss"},
    metrics={}, batch_size=16,
)
