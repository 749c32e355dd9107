"""Adversarial perturbations towards target labels: target draws and L2 / Linf / L0 attacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pl_dsl.errors import lookup
from pl_dsl.science.nn import Divergence, TwoLayerNet, margin_loss
from pl_dsl.spec.config import AttackConfig


def _iid_targets(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (len(y),), generator=generator).float() * 2 - 1


def _balanced_targets(y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    n = len(y)
    labels = torch.cat([torch.ones((n + 1) // 2), -torch.ones(n // 2)])
    return labels[torch.randperm(n, generator=generator)]


TARGETS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "random": _iid_targets,  # i.i.d. uniform: the paper's protocol
    "balanced": _balanced_targets,  # an exactly balanced random permutation
    "flip": lambda y, generator: -y,
}


def draw_targets(mode: str, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Target labels y_adv: i.i.d. uniform, an exactly balanced permutation, or flipped labels."""
    return lookup(TARGETS, mode, "target mode")(y, generator)


@dataclass(frozen=True)
class Norm:
    """One attack norm: its steepest step of a given size, its projection, and its size measure."""

    steepest: Callable[[torch.Tensor, float, int], torch.Tensor]  # (grad, size, k) -> step along -grad
    project: Callable[[torch.Tensor, float, int], torch.Tensor]  # (delta, eps, k) -> onto the eps-ball
    size: Callable[[torch.Tensor], torch.Tensor]  # per-sample norm


def _l2_step(grad: torch.Tensor, size: float, k: int) -> torch.Tensor:
    norms = grad.norm(dim=1, keepdim=True)
    if not torch.isfinite(norms).all():  # huge but finite gradients: scale first, so the norm cannot overflow
        grad = grad / grad.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        norms = grad.norm(dim=1, keepdim=True)
    step: torch.Tensor = -size * grad / norms.clamp_min(1e-30)
    return step


def _l2_project(delta: torch.Tensor, eps: float, k: int) -> torch.Tensor:
    scale: torch.Tensor = (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
    return delta * scale


def _l0_step(grad: torch.Tensor, size: float, k: int) -> torch.Tensor:
    top = grad.abs().topk(min(k, grad.shape[1]), dim=1).indices
    return torch.zeros_like(grad).scatter_(1, top, -size * grad.gather(1, top).sign())


def _l0_project(delta: torch.Tensor, eps: float, k: int) -> torch.Tensor:
    """k coordinates, each at most eps."""
    delta = delta.clamp(-eps, eps)
    keep = delta.abs().topk(min(k, delta.shape[1]), dim=1).indices
    return torch.zeros_like(delta).scatter_(1, keep, delta.gather(1, keep))


NORMS: dict[str, Norm] = {
    "l2": Norm(_l2_step, _l2_project, lambda delta: delta.norm(dim=1)),
    "linf": Norm(lambda grad, size, k: -size * grad.sign(), lambda delta, eps, k: delta.clamp(-eps, eps),
                 lambda delta: delta.abs().amax(dim=1)),
    "l0": Norm(_l0_step, _l0_project, lambda delta: (delta != 0).sum(dim=1).float()),
}


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample size of delta in the attack's own norm."""
    return lookup(NORMS, norm, "attack norm").size(delta)


def perturb(model: TwoLayerNet, x: torch.Tensor, y_adv: torch.Tensor, loss: str,
            attack: AttackConfig) -> torch.Tensor:
    """r_n minimising the training loss of f at y_adv_n within the eps-ball (one step or PGD)."""
    norm = lookup(NORMS, attack.norm, "attack norm")
    size = attack.eps if attack.steps == 1 else attack.step_size * attack.eps
    for p in model.parameters():
        p.requires_grad_(False)
    delta = torch.zeros_like(x)
    for step in range(attack.steps):
        point = (x + delta).requires_grad_(True)
        total = margin_loss(loss, y_adv * model(point)).sum()
        if not torch.isfinite(total):
            raise Divergence(step, total.item())
        (grad,) = torch.autograd.grad(total, point)
        if not torch.isfinite(grad).all():
            raise Divergence(step, total.item(), "the gradient of f's loss overflowed (f's weights are too large: "
                                                 "lower f's learning rate)")
        delta = norm.project(delta + norm.steepest(grad, size, attack.l0_k), attack.eps, attack.l0_k)
    if not torch.isfinite(delta).all():
        raise Divergence(attack.steps, float("nan"), "some perturbations are not finite")
    if attack.eps > 0 and not delta.any():
        raise Divergence(attack.steps, 0.0, "every perturbation is exactly zero (the gradient of f's loss vanished "
                                            "or underflowed)")
    return delta.detach()
