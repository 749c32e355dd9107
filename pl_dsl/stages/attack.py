"""attack: the perturbation r_n of every training sample towards its target label y_adv_n."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import PGD_STEP_BUDGET, AttackConfig, TrainingConfig
from pl_dsl.spec.sections import Resolution, Section, schema_beside
from pl_dsl.stages.common import Common, accuracy, passes_cost, working_bytes


@dataclass(frozen=True)
class AttackParams(Common):
    attack: AttackConfig
    train: TrainingConfig  # f's: the attack descends f's own training loss


def compute(ctx: UnitContext, params: AttackParams) -> Output:
    import torch

    from pl_dsl.science.attack import draw_targets, perturb, perturbation_norm
    from pl_dsl.science.nn import predict
    from pl_dsl.science.rng import stream_seed

    data = ctx.dataset(params.data, params.seed)
    f = ctx.network("f", params.network, data.x.shape[1])
    seed = stream_seed(params.seed, "targets", params.data.stream_identity(), params.attack.targets)
    y_adv = draw_targets(params.attack.targets, data.y.cpu(), torch.Generator().manual_seed(seed)).to(ctx.device)
    delta = perturb(f, data.x, y_adv, params.train.loss, params.attack)
    norms = perturbation_norm(delta, params.attack.norm)
    return Output({"perturbations.pt": {"delta": delta.cpu(), "y_adv": y_adv.cpu()}}, {
        "attack_success": accuracy(predict(f, data.x + delta), y_adv),
        "pert_norm_mean": norms.mean().item(),
        "pert_norm_max": norms.max().item(),
        "target_mean": y_adv.mean().item(),
    })


def resolve_attack(context: Resolution) -> dict[str, Any]:
    """eps made absolute (eps_per_coord * sqrt(d) for the run's own d), PGD's step defaulted."""
    attack = dict(context.spec["attack"])
    eps = attack.pop("eps", None)
    per_coord = attack.pop("eps_per_coord")
    attack["eps"] = eps if eps is not None else per_coord * math.sqrt(context.done["data"]["dim"])
    attack.setdefault("step_size", PGD_STEP_BUDGET / attack["steps"])
    return attack


def eps_given_twice(attack: Any) -> list[tuple[str, str]]:
    """eps and eps_per_coord both given (written or swept) would contradict each other."""
    if isinstance(attack, dict) and "eps" in attack and "eps_per_coord" in attack:
        return [("", "give either eps or eps_per_coord, not both (directly or through a sweep)")]
    return []


SECTION = Section("attack", AttackConfig, schema_beside(__file__), resolve=resolve_attack,
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
