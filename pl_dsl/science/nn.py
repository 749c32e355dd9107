"""The two-layer network with a frozen readout, the margin losses, and full-batch training."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from pl_dsl.errors import lookup
from pl_dsl.spec.config import NetworkConfig, TrainingConfig


class Divergence(Exception):
    """Training or the attack produced a non-finite loss (or, for the attack, unusable
    perturbations) at a given step; `reason` says what, when it was not the loss."""

    def __init__(self, step: int, value: float, reason: str | None = None) -> None:
        super().__init__(reason or f"loss became {value} at step {step}")
        self.step = step
        self.value = value
        self.reason = reason

    def describe(self, stage: str) -> str:
        """One line for people: what diverged, where."""
        if self.reason:
            return f"{stage} diverged at step {self.step}: {self.reason}"
        return f"{stage} diverged at step {self.step} (loss = {self.value})"


class TwoLayerNet(nn.Module):
    """f(x) = sum_i a_i * phi(<w_i, x> + b_i) with phi a leaky ReLU and a frozen readout a."""

    readout: torch.Tensor

    def __init__(self, dim: int, width: int, leaky_slope: float, readout: str, bias: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.leaky_slope = leaky_slope
        self.weight = nn.Parameter(torch.randn(width, dim, generator=generator) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.randn(width, generator=generator)) if bias else None
        self.register_buffer("readout", lookup(READOUTS, readout, "readout")(width, generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.linear(x, self.weight, self.bias)
        return F.leaky_relu(pre, self.leaky_slope) @ self.readout


def _gaussian_readout(width: int, generator: torch.Generator) -> torch.Tensor:
    """a_i ~ N(0, 1/m) (NeurIPS 2024)."""
    return torch.randn(width, generator=generator) / math.sqrt(width)


def _sign_readout(width: int, generator: torch.Generator) -> torch.Tensor:
    """+1/sqrt(m) for the first half, -1/sqrt(m) for the second (ICLR 2024)."""
    return torch.cat([torch.ones((width + 1) // 2), -torch.ones(width // 2)]) / math.sqrt(width)


READOUTS: dict[str, Callable[[int, torch.Generator], torch.Tensor]] = {
    "gaussian": _gaussian_readout, "sign": _sign_readout}


def build_network(network: NetworkConfig, dim: int, generator: torch.Generator) -> TwoLayerNet:
    """A network initialised from the spec's network section and a dedicated generator."""
    return TwoLayerNet(dim, network.width, network.leaky_slope, network.readout, network.bias, generator)


def _exponential(margin: torch.Tensor) -> torch.Tensor:
    return torch.exp(-margin)


LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda margin: -margin,
    "logistic": lambda margin: F.softplus(-margin),  # log(1 + exp(-s)) without overflow
    "exponential": _exponential,
}


def margin_loss(name: str, margin: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of the margins s = y f(x)."""
    return lookup(LOSSES, name, "loss")(margin)


# Autocast dtype per training precision; None trains in plain fp32.
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """fp16 / bf16 autocast for the forward pass, or nothing for fp32."""
    dtype = lookup(PRECISIONS, precision, "precision")
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


OPTIMIZERS: dict[str, Callable[[list[torch.nn.Parameter], TrainingConfig], torch.optim.Optimizer]] = {
    "sgd": lambda params, config: torch.optim.SGD(params, lr=config.lr, momentum=config.momentum),
}
# Learning-rate schedules, stepped with the loss after every step; None keeps the rate fixed.
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.ReduceLROnPlateau] | None] = {
    "plateau": torch.optim.lr_scheduler.ReduceLROnPlateau,  # PyTorch defaults: factor 0.1, patience 10
    "constant": None,
}


def train(model: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig,
          on_step: Callable[[int, int, float], None] | None = None) -> list[float]:
    """Full-batch training for config.steps steps; returns the loss curve. After each step,
    on_step(steps done, config.steps, loss) if given (progress reports).

    Raises Divergence with the step number as soon as the loss is not finite.
    """
    optimizer = lookup(OPTIMIZERS, config.optimizer, "optimizer")(
        [p for p in model.parameters() if p.requires_grad], config)
    make_scheduler = lookup(SCHEDULES, config.schedule, "schedule")
    scheduler = make_scheduler(optimizer) if make_scheduler is not None else None
    device_type = x.device.type
    scaler = torch.amp.GradScaler(device_type) if config.precision == "fp16" else None
    losses: list[float] = []
    for step in range(config.steps):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device_type, config.precision):
            loss = margin_loss(config.loss, y * model(x).float()).mean()
        value = loss.item()
        if not math.isfinite(value):
            raise Divergence(step, value)
        if scaler is None:
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        else:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step(value)
        losses.append(value)
        if on_step is not None:
            on_step(step + 1, config.steps, value)
    return losses


def outputs(model: TwoLayerNet, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Raw network outputs, computed in chunks without gradients."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def labels_of(values: torch.Tensor) -> torch.Tensor:
    """Signs as labels +-1, 0 counting as +1."""
    return torch.where(values >= 0, 1.0, -1.0)


def predict(model: TwoLayerNet, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Predicted labels +-1 (an output of exactly 0 counts as +1)."""
    return labels_of(outputs(model, x, chunk))
