"""The two-layer network with a frozen readout, the margin losses, and full-batch training."""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable

import torch
from torch import nn
from torch.nn import functional as F


class Divergence(Exception):
    """Training or the attack produced a non-finite loss at a given step."""

    def __init__(self, step: int, value: float) -> None:
        super().__init__(f"loss became {value} at step {step}")
        self.step = step
        self.value = value


class TwoLayerNet(nn.Module):
    """f(x) = sum_i a_i * phi(<w_i, x> + b_i) with phi a leaky ReLU and a frozen readout a."""

    def __init__(self, dim: int, width: int, leaky_slope: float, readout: str, bias: bool,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.leaky_slope = leaky_slope
        self.weight = nn.Parameter(torch.randn(width, dim, generator=generator) / math.sqrt(dim))
        self.bias = nn.Parameter(torch.randn(width, generator=generator)) if bias else None
        if readout == "gaussian":
            a = torch.randn(width, generator=generator) / math.sqrt(width)
        else:
            a = torch.cat([torch.ones((width + 1) // 2), -torch.ones(width // 2)]) / math.sqrt(width)
        self.register_buffer("readout", a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.linear(x, self.weight, self.bias)
        return F.leaky_relu(pre, self.leaky_slope) @ self.readout


def build_network(network: dict[str, Any], dim: int, generator: torch.Generator) -> TwoLayerNet:
    """A network initialised from the spec's network section and a dedicated generator."""
    return TwoLayerNet(dim, network["width"], network["leaky_slope"], network["readout"],
                       network["bias"], generator)


def _exponential(margin: torch.Tensor) -> torch.Tensor:
    return torch.exp(-margin)


LOSSES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda margin: -margin,
    "logistic": lambda margin: F.softplus(-margin),  # log(1 + exp(-s)) without overflow
    "exponential": _exponential,
}


def margin_loss(name: str, margin: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of the margins s = y f(x)."""
    return LOSSES[name](margin)


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """fp16 / bf16 autocast for the forward pass, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16)


def train(model: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, config: dict[str, Any]) -> list[float]:
    """Full-batch training for config['steps'] steps; returns the loss curve.

    Raises Divergence with the step number as soon as the loss is not finite.
    """
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                lr=config["lr"], momentum=config["momentum"])
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
                 if config["schedule"] == "plateau" else None)
    precision = config.get("precision", "fp32")
    device_type = x.device.type
    scaler = torch.amp.GradScaler(device_type) if precision == "fp16" else None
    losses: list[float] = []
    for step in range(config["steps"]):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device_type, precision):
            loss = margin_loss(config["loss"], y * model(x).float()).mean()
        value = loss.item()
        if not math.isfinite(value):
            raise Divergence(step, value)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step(value)
        losses.append(value)
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
