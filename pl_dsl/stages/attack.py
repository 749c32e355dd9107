"""attack: the perturbation r_n of every training sample towards its target label y_adv_n."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.errors import lookup
from pl_dsl.spec.config import AttackConfig, TrainingConfig
from pl_dsl.spec.sections import Section, schema_beside

if TYPE_CHECKING:
    import torch

    from pl_dsl.science.data import Dataset
from pl_dsl.stages.common import (
    BaseParams,
    absolute_eps,
    accuracy,
    eps_given_twice,
    passes_cost,
    run_dataset,
    working_bytes,
)


@dataclass(frozen=True)
class AttackParams(BaseParams):
    attack: AttackConfig
    train: TrainingConfig  # f's: the attack descends f's own training loss


def _own_targets(ctx: UnitContext, params: AttackParams, data: Dataset) -> torch.Tensor:
    """From the run's own targets stream (seed, data and target mode)."""
    import torch

    from pl_dsl.science.attack import draw_targets
    from pl_dsl.science.rng import stream_seed

    seed = stream_seed(params.seed, "targets", params.data.stream_identity(), params.attack.targets)
    return draw_targets(params.attack.targets, data.y.cpu(), torch.Generator().manual_seed(seed)).to(ctx.device)


def _reference_targets(ctx: UnitContext, params: AttackParams, data: Dataset) -> torch.Tensor:
    """The authors' targets: the draw after the training set (stages/streams.py)."""
    from pl_dsl.stages.streams import reference_draws

    targets = reference_draws(ctx, params).targets
    assert targets is not None
    return targets


# The target labels y_adv per random streams (`rng`, stages/streams.py).
TARGETS: dict[str, Callable[[UnitContext, AttackParams, Dataset], torch.Tensor]] = {
    "pl-dsl": _own_targets, "reference": _reference_targets}


def compute(ctx: UnitContext, params: AttackParams) -> Output:
    from pl_dsl.science.attack import perturb, perturbation_norm
    from pl_dsl.science.nn import predict

    data = run_dataset(ctx, params)
    f = ctx.network("f", params.network, data.x.shape[1])
    y_adv = lookup(TARGETS, params.rng, "rng")(ctx, params, data)
    delta = perturb(f, data.x, y_adv, params.train.loss, params.attack)
    norms = perturbation_norm(delta, params.attack.norm)
    return Output({"perturbations.pt": {"delta": delta.cpu(), "y_adv": y_adv.cpu()}}, {
        "attack_success": accuracy(predict(f, data.x + delta), y_adv),
        "pert_norm_mean": norms.mean().item(),
        "pert_norm_max": norms.max().item(),
        "target_mean": y_adv.mean().item(),
    })


SECTION = Section("attack", AttackConfig, schema_beside(__file__), resolve=absolute_eps("attack"),
                  columns=lambda attack: {"eps": attack.eps}, problems=eps_given_twice)

STAGE = Stage(
    name="attack", params=AttackParams, rename={"train": "train_f"}, compute=compute,
    cost=lambda params: passes_cost(params, params.attack.steps),
    memory=lambda params: working_bytes(params, 3),  # x, r_n and its gradient
    inputs={"f": "train_f"},
    writes={"perturbations.pt": "r_n (delta) and the target labels y_adv of every training sample"},
    metrics={
        "attack_success": "fraction of n with sign f(x_n + r_n) = y_adv_n",
        "pert_norm_mean": "mean norm of r_n in the attack's norm",
        "pert_norm_max": "largest norm of r_n in the attack's norm",
        "target_mean": "mean target label y_adv (0 for balanced targets)",
    },
    batch_size=64, sections=(SECTION,),
)
