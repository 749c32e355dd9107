"""train_g: a fresh network g, trained only on the perturbations (scenario a) or the
adversarial examples (scenario b), with the target labels y_adv."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pl_dsl.engine.registry import Stage, UnitContext
from pl_dsl.spec.config import TrainingConfig
from pl_dsl.spec.sections import schema_beside
from pl_dsl.stages.common import (
    BaseParams,
    adversarial_inputs,
    fit_together,
    passes_cost,
    run_dataset,
    training_of,
    working_bytes,
)

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TrainGParams(BaseParams):
    train: TrainingConfig
    scenario: str


def compute_together(ctx: UnitContext, members: Sequence[TrainGParams]) -> None:
    """The g of each member, trained on its own attack's inputs and targets (members that read
    the same attack in the same scenario share them)."""
    shared: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}
    data = []
    for index, member in enumerate(members):
        context = ctx.member(index)
        attack = context.load("attack", "perturbations.pt")  # one object per attack unit (cached)
        key = (id(attack), member.scenario)
        if key not in shared:
            x_adv = adversarial_inputs(member.scenario, run_dataset(context, member), attack["delta"])
            shared[key] = (x_adv, attack["y_adv"].to(ctx.device))
        data.append(shared[key])
    fit_together(ctx, members, "g", data, [m.train for m in members])


STAGE = Stage(
    name="train_g", params=TrainGParams, rename={"train": "train_g"}, compute_together=compute_together,
    trains="train", cost=lambda params: passes_cost(params, params.train.steps),
    memory=lambda params: working_bytes(params, 3),  # x, r_n and g's inputs
    inputs={"attack": "attack"},
    writes={"model.pt": "the trained weights of g and its final training loss"},
    metrics={}, batch_size=16, sections=(training_of("train_g", schema_beside(__file__)),),
)
