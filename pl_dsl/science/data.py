"""The data sets: training set D and a clean test set, generated or loaded deterministically."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from pl_dsl.errors import StageFailure, lookup
from pl_dsl.science.datasets import REAL_DATASETS, SYNTHETIC_KINDS, data_kind, load_split
from pl_dsl.science.rng import stream_seed
from pl_dsl.spec.config import DataConfig


@dataclass
class Dataset:
    """Training inputs/labels (labels are +-1 floats) and the clean test set."""

    x: torch.Tensor
    y: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device: torch.device) -> Dataset:
        return Dataset(self.x.to(device), self.y.to(device), self.x_test.to(device), self.y_test.to(device))


Sampler = Callable[[int, DataConfig, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def _gauss(n: int, data: DataConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(0, I_d), labels uniform +-1."""
    y = torch.randint(0, 2, (n,), generator=generator).float() * 2 - 1
    return torch.randn(n, data.dim, generator=generator), y


def _shifted_gauss(n: int, data: DataConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """First half +1, second half -1, x ~ N(mean_shift * y * 1, I)."""
    assert data.mean_shift is not None
    y = torch.cat([torch.ones((n + 1) // 2), -torch.ones(n // 2)])
    return torch.randn(n, data.dim, generator=generator) + data.mean_shift * y[:, None], y


SAMPLERS: dict[str, Sampler] = {"gauss": _gauss, "shifted_gauss": _shifted_gauss}
assert set(SAMPLERS) == set(SYNTHETIC_KINDS), "every synthetic kind needs a sampler"


def _class_pair(data: DataConfig, split: str, count: int | None,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples of the two classes (first +1, second -1), optionally a balanced random subsample."""
    info = lookup(REAL_DATASETS, data.kind, "real data set")
    assert data.classes is not None
    images, labels = load_split(data.kind, data.root, split, data.content)
    labels_t = torch.from_numpy(labels)
    chosen = []
    for cls, want in zip(data.classes, ((count + 1) // 2, count // 2) if count else (None, None)):
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


def make_dataset(data: DataConfig, seed: int) -> Dataset:
    """Build D and the test set; the same data config and seed always give the same tensors."""
    generator = torch.Generator().manual_seed(stream_seed(seed, "data", data.stream_identity()))
    if data_kind(data.kind).kind in REAL_DATASETS:
        x, y = _class_pair(data, "train", data.n_train, generator)
        x_test, y_test = _class_pair(data, "test", data.n_test, generator)
        return Dataset(x, y, x_test, y_test)
    sample = lookup(SAMPLERS, data.kind, "synthetic data kind")
    assert data.n_train is not None and data.n_test is not None
    x, y = sample(data.n_train, data, generator)
    x_test, y_test = sample(data.n_test, data, generator)
    return Dataset(x, y, x_test, y_test)
