"""The data sets: training set D and a clean test set, generated or loaded deterministically."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pl_dsl.datasets import REAL_DATASETS, load_split
from pl_dsl.errors import StageFailure
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


def data_identity(data: dict[str, Any]) -> dict[str, Any]:
    """The data fields that define the samples (where the files lie does not)."""
    return {k: v for k, v in data.items() if k != "root"}


def _class_pair(kind: str, data: dict[str, Any], split: str, count: int | None,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of the two classes (first +1, second -1), optionally a balanced random subsample."""
    info = REAL_DATASETS[kind]
    images, labels = load_split(kind, data.get("root"), split)
    labels_t = torch.from_numpy(labels)
    chosen = []
    for cls, want in zip(data["classes"], ((count + 1) // 2, count // 2) if count else (None, None)):
        index = torch.nonzero(labels_t == cls).flatten()
        if want is not None:
            if want > len(index):
                raise StageFailure(f"data.n_{split} asks for {want} samples of class {cls} but the {info.title} "
                                   f"{split} split has {len(index)}")
            index = index[torch.randperm(len(index), generator=generator)[:want]].sort().values
        chosen.append(index)
    x = torch.from_numpy(images[torch.cat(chosen).numpy()]).float() / 255.0
    mean = torch.tensor(info.mean)
    x = (x.view(len(x), len(info.mean), -1) - mean[None, :, None]).reshape(len(x), -1)
    y = torch.cat([torch.ones(len(chosen[0])), -torch.ones(len(chosen[1]))])
    return x, y


def make_dataset(data: dict[str, Any], seed: int) -> Dataset:
    """Build D and the test set; the same data spec and seed always give the same tensors."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "data", data_identity(data)))
    kind = data["kind"]
    if kind in REAL_DATASETS:
        x, y = _class_pair(kind, data, "train", data["n_train"], generator)
        x_test, y_test = _class_pair(kind, data, "test", data["n_test"], generator)
        return Dataset(x, y, x_test, y_test)
    x, y = _synthetic(kind, data["n_train"], data["dim"], data["mean_shift"], generator)
    x_test, y_test = _synthetic(kind, data["n_test"], data["dim"], data["mean_shift"], generator)
    return Dataset(x, y, x_test, y_test)
