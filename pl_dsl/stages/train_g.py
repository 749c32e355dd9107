"""train_g: a fresh network g, trained only on the perturbations (scenario a) or the
adversarial examples (scenario b), with the target labels y_adv."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.stages.common import Common, adversarial_inputs, init_generator


@dataclass(frozen=True)
class TrainGParams(Common):
    train: TrainingConfig
    scenario: str


def compute(ctx: UnitContext, params: TrainGParams) -> Output:
    from pl_dsl.science.nn import build_network, train

    data = ctx.dataset(params.data, params.seed)
    attack = ctx.load("attack", "perturbations.pt")
    x_adv = adversarial_inputs(params.scenario, data, attack["delta"])
    model = build_network(params.network, data.x.shape[1], init_generator(params, "init_g")).to(ctx.device)
    losses = train(model, x_adv, attack["y_adv"].to(ctx.device), params.train)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    return Output({"model.pt": {"state": state, "final_loss": losses[-1] if losses else None}})


def cost(params: TrainGParams) -> float:
    return 3.0 * params.train.steps * params.sizes()[0] * params.per_sample()


STAGE = Stage(
    name="train_g", params=TrainGParams, rename={"train": "train_g"}, compute=compute, cost=cost,
    inputs={"attack": "attack"},
    writes={"model.pt": "the trained weights of g and its final training loss"},
    metrics={}, batch_size=16,
)
