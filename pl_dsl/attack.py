"""Adversarial perturbations towards target labels: target draws and L2 / Linf / L0 attacks."""

from __future__ import annotations

from typing import Any

import torch

from pl_dsl.nn import Divergence, TwoLayerNet, margin_loss


def draw_targets(mode: str, y: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Target labels y_adv: i.i.d. uniform, an exactly balanced permutation, or flipped labels."""
    n = len(y)
    if mode == "flip":
        return -y
    if mode == "balanced":
        labels = torch.cat([torch.ones((n + 1) // 2), -torch.ones(n // 2)])
        return labels[torch.randperm(n, generator=generator)]
    return torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1


def _steepest(grad: torch.Tensor, norm: str, size: float, k: int) -> torch.Tensor:
    """The step of the given size in the norm's steepest-descent direction of -grad."""
    if norm == "l2":
        return -size * grad / grad.norm(dim=1, keepdim=True).clamp_min(1e-30)
    if norm == "linf":
        return -size * grad.sign()
    top = grad.abs().topk(min(k, grad.shape[1]), dim=1).indices
    step = torch.zeros_like(grad)
    return step.scatter_(1, top, -size * grad.gather(1, top).sign())


def _project(delta: torch.Tensor, norm: str, eps: float, k: int) -> torch.Tensor:
    """Back onto the eps-ball of the norm (for L0: k coordinates, each at most eps)."""
    if norm == "l2":
        scale = (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-30)).clamp(max=1.0)
        return delta * scale
    delta = delta.clamp(-eps, eps)
    if norm == "l0":
        keep = delta.abs().topk(min(k, delta.shape[1]), dim=1).indices
        delta = torch.zeros_like(delta).scatter_(1, keep, delta.gather(1, keep))
    return delta


def perturbation_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample size of delta in the attack's own norm."""
    if norm == "l2":
        return delta.norm(dim=1)
    if norm == "linf":
        return delta.abs().amax(dim=1)
    return (delta != 0).sum(dim=1).float()


def perturb(model: TwoLayerNet, x: torch.Tensor, y_adv: torch.Tensor, loss: str,
            attack: dict[str, Any]) -> torch.Tensor:
    """r_n minimising the training loss of f at y_adv_n within the eps-ball (one step or PGD)."""
    eps, steps, norm, k = attack["eps"], attack["steps"], attack["norm"], attack["l0_k"]
    size = eps if steps == 1 else attack["step_size"] * eps
    for p in model.parameters():
        p.requires_grad_(False)
    delta = torch.zeros_like(x)
    for step in range(steps):
        point = (x + delta).requires_grad_(True)
        total = margin_loss(loss, y_adv * model(point)).sum()
        if not torch.isfinite(total):
            raise Divergence(step, total.item())
        (grad,) = torch.autograd.grad(total, point)
        delta = _project(delta + _steepest(grad, norm, size, k), norm, eps, k)
    return delta.detach()
