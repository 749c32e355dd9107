"""Whose random streams a run draws from (`rng:`), declared once: where its data set, its
networks' initial weights and its target labels come from, and whose arithmetic its training
computes with. The stages ask this table, never the mode's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from pl_dsl.errors import lookup

if TYPE_CHECKING:

    from pl_dsl.engine.registry import UnitContext
    from pl_dsl.science.data import Dataset
    from pl_dsl.science.nn import Arithmetic, TwoLayerNet
    from pl_dsl.science.reference import Draws
    from pl_dsl.spec.config import DataConfig, NetworkConfig
    from pl_dsl.stages.common import BaseParams


@dataclass(frozen=True)
class Streams:
    """dataset: a run's D and clean test set on the unit's device; network: a fresh network for a
    role ('f' or 'g'); arithmetic: the losses and training f and g compute with (science.nn's, or
    the authors' as science/reference.py writes them out). The attack's target labels and
    perturbations are declared per mode beside the attack (stages/attack.py), so that f's code
    fingerprint does not cover the attack's."""

    dataset: Callable[[UnitContext, BaseParams], Dataset]
    network: Callable[[UnitContext, BaseParams, str, int], TwoLayerNet]
    arithmetic: Callable[[], Arithmetic]


def _own_network(ctx: UnitContext, params: BaseParams, role: str, dim: int) -> TwoLayerNet:
    from pl_dsl.science.nn import build_network
    from pl_dsl.stages.common import init_generator

    return build_network(params.network, dim, init_generator(params, f"init_{role}"))


@lru_cache(maxsize=4)
def _replayed(seed: int, data: DataConfig, network: NetworkConfig, device: str) -> Draws:
    import torch

    from pl_dsl.science.reference import draws

    return draws(seed, data, network, torch.device(device), until="test")


def reference_draws(ctx: UnitContext, params: BaseParams) -> Draws:
    """Every draw of a reference run, replayed on the unit's device (cached per process)."""
    return _replayed(params.seed, params.data, params.network, str(ctx.device))


def _reference_dataset(ctx: UnitContext, params: BaseParams) -> Dataset:
    from pl_dsl.science.data import Dataset

    drawn = reference_draws(ctx, params)
    assert drawn.x is not None and drawn.y is not None and drawn.x_test is not None and drawn.y_test is not None
    return Dataset(drawn.x, drawn.y, drawn.x_test, drawn.y_test)


def _reference_network(ctx: UnitContext, params: BaseParams, role: str, dim: int) -> TwoLayerNet:
    import torch

    from pl_dsl.science.nn import build_network

    # g's weights come after the data and targets, drawn on the run's device: replay on it
    drawn = getattr(reference_draws(ctx, params), role)
    net = build_network(params.network, dim, torch.Generator())
    net.load_state_dict({"weight": drawn.weight, "bias": drawn.bias, "readout": drawn.readout})
    return net


def _own_arithmetic() -> Arithmetic:
    from pl_dsl.science.nn import OWN_ARITHMETIC

    return OWN_ARITHMETIC


def _their_arithmetic() -> Arithmetic:
    from pl_dsl.science.reference import THEIR_ARITHMETIC

    return THEIR_ARITHMETIC


STREAMS: dict[str, Streams] = {
    "pl-dsl": Streams(lambda ctx, params: ctx.dataset(params.data, params.seed), _own_network, _own_arithmetic),
    "reference": Streams(_reference_dataset, _reference_network, _their_arithmetic),
}


def streams(params: BaseParams) -> Streams:
    """The streams a unit's run draws from."""
    return lookup(STREAMS, params.rng, "rng")
