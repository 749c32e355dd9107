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
    from pl_dsl.science.nn import TwoLayerNet
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


def _own_perturbations(f: TwoLayerNet, x: torch.Tensor, y_adv: torch.Tensor, params: AttackParams) -> torch.Tensor:
    from pl_dsl.science.attack import perturb

    return perturb(f, x, y_adv, params.train.loss, params.attack)


def _their_perturbations(f: TwoLayerNet, x: torch.Tensor, y_adv: torch.Tensor, params: AttackParams) -> torch.Tensor:
    from pl_dsl.science.reference import their_perturbations

    return their_perturbations(f, x, y_adv, params.train.loss, params.attack.eps)


@dataclass(frozen=True)
class AttackMode:
    """Per random streams (`rng`, stages/streams.py): where the target labels y_adv come from, and
    whose arithmetic computes r_n (pl-dsl's projected steps, or their one normalised step)."""

    targets: Callable[[UnitContext, AttackParams, Dataset], torch.Tensor]
    perturbations: Callable[[TwoLayerNet, torch.Tensor, torch.Tensor, AttackParams], torch.Tensor]


MODES: dict[str, AttackMode] = {"pl-dsl": AttackMode(_own_targets, _own_perturbations),
                                "reference": AttackMode(_reference_targets, _their_perturbations)}


def compute(ctx: UnitContext, params: AttackParams) -> Output:
    from pl_dsl.science.attack import perturbation_norm
    from pl_dsl.science.nn import input_gradient, outputs, predict
    from pl_dsl.stages.streams import streams

    data = run_dataset(ctx, params)
    f = ctx.network("f", params.network, data.x.shape[1])
    mode = lookup(MODES, params.rng, "rng")
    y_adv = mode.targets(ctx, params, data)
    # where the authors' arithmetic departs from pl-dsl's (docs/spec.md, "Their arithmetic")
    margins = y_adv * outputs(f, data.x)
    gradients = input_gradient(f, data.x, y_adv, params.train.loss, streams(params).arithmetic()).flatten(1).norm(dim=1)
    delta = mode.perturbations(f, data.x, y_adv, params)
    finite = delta.isfinite().all(dim=1)
    norms = perturbation_norm(delta[finite], params.attack.norm)
    lost = int((~finite).sum())
    note = f"r_n non-finite for {lost} of {len(delta)} samples (as their code)" if lost else None
    return Output({"perturbations.pt": {"delta": delta.cpu(), "y_adv": y_adv.cpu()}}, {
        "attack_success": accuracy(predict(f, data.x + delta), y_adv),
        "pert_norm_mean": norms.mean().item() if len(norms) else None,
        "pert_norm_min": norms.min().item() if len(norms) else None,
        "pert_norm_max": norms.max().item() if len(norms) else None,
        "pert_nonfinite": lost / len(delta),
        "target_margin_min": margins.min().item(),
        "grad_norm_min": gradients[gradients.isfinite()].min().item() if gradients.isfinite().any() else None,
        "target_mean": y_adv.mean().item(),
    }, note=note)


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
        "pert_norm_mean": "mean norm of the finite r_n in the attack's norm",
        "pert_norm_min": "smallest norm of the finite r_n (below eps where the authors' normalisation floor shrinks it)",
        "pert_norm_max": "largest norm of the finite r_n in the attack's norm",
        "pert_nonfinite": "fraction of n whose r_n is not finite (only as the authors' code computes it)",
        "target_margin_min": "smallest margin y_adv_n f(x_n) at the targets (below -88.72 the authors' fp32 logistic "
                             "loss overflows)",
        "grad_norm_min": "smallest norm of the loss gradient at x_n towards y_adv_n (below 1e-12 the authors' "
                         "normalisation shortens r_n)",
        "target_mean": "mean target label y_adv (0 for balanced targets)",
    },
    batch_size=64, sections=(SECTION,),
)
