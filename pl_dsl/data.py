"""The data sets: training set D and a clean test set, generated or loaded deterministically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pl_dsl.rng import stream_seed


@dataclass
class Dataset:
    """Training inputs/labels (labels are +-1 floats) and the clean test set."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: torch.device) -> "Dataset":
        return Dataset(self.x.to(device), self.y.to(device), self.x_test.to(device), self.y_test.to(device))


def _synthetic(kind: str, n: int, dim: int, shift: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "gauss":
        y = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
        return torch.randn(n, dim, generator=generator), y
    # shifted_gauss: first half +1, second half -1, x ~ N(shift * y * 1, I)
    y = torch.cat([torch.ones((n + 1) // 2), -torch.ones(n // 2)])
    return torch.randn(n, dim, generator=generator) + shift * y[:, None], y


def make_dataset(data: dict[str, Any], seed: int) -> Dataset:
    """Build D and the test set; the same data spec and seed always give the same tensors."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "data", data))
    x, y = _synthetic(data["kind"], data["n_train"], data["dim"], data["mean_shift"], generator)
    x_test, y_test = _synthetic(data["kind"], data["n_test"], data["dim"], data["mean_shift"], generator)
    return Dataset(x, y, x_test, y_test)
