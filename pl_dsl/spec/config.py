"""The resolved run: frozen dataclasses built once from a checked spec, read by every stage.

Defaults are not written here: resolution fills them from the schema, so the schema stays the
only place a default lives. What depends on the data kind (dimension and
sample counts of real data sets) comes from the data-kind table in `science.datasets`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar, Union

from pl_dsl.hashing import Encoded, encoded, encoded_dict

T = TypeVar("T")

# A field with this metadata is carried to the stage but is not part of any identity.
NOT_IDENTITY = {"identity": False}
def omitted_when(value: Any) -> dict[str, Any]:
    """Metadata of a field left out of the plain JSON while it holds `value`: a field added to a
    config keeps every identity (run ids, unit keys) that never had it."""
    return {"omitted_when": value}


OMIT_IF_NONE = omitted_when(None)
# Whose random streams a run draws from: pl-dsl's (each stage its own stream from the seed and
# its identity) or the authors' (`rng: reference`, science/reference.py).
DEFAULT_RNG = "pl-dsl"


@dataclass(frozen=True)
class DataConfig:
    """The data set D and the clean test set."""

    kind: str
    dim: int
    n_train: int | None  # None: every sample of the two classes (real data)
    n_test: int | None
    mean_shift: float | None = None  # synthetic data only
    classes: tuple[int, int] | None = None  # real data only
    root: str | None = field(default=None, metadata=NOT_IDENTITY)  # where files lie, not what they are
    # Real data: the checksum of the files read (datasets.FileIdentity.content), so that results
    # computed from other files are never reused; None where the files are missing here.
    content: str | None = field(default=None, metadata=OMIT_IF_NONE)

    def stream_identity(self) -> dict[str, Any]:
        """The fields that define the samples, as the random streams see them."""
        from pl_dsl.science.datasets import data_kind

        return {name: to_json(getattr(self, name)) for name in data_kind(self.kind).fields}


@dataclass(frozen=True)
class NetworkConfig:
    """The two-layer network used for f and for g."""

    width: int
    leaky_slope: float
    readout: str
    bias: bool


@dataclass(frozen=True)
class TrainingConfig:
    """Full-batch training of one network."""

    loss: str
    steps: int
    lr: float
    optimizer: str
    momentum: float
    schedule: str
    precision: str

    @property
    def causal(self) -> bool:
        """Whether the state after t steps does not depend on the horizon `steps`, so one
        training to the largest T passes through every shorter training (step-prefix reuse)."""
        return CAUSAL_SCHEDULES[self.schedule]


# Learning-rate schedules (science.nn.SCHEDULES) and whether each is causal: a constant rate
# and ReduceLROnPlateau (which reacts only to losses already seen) are; a schedule that reads
# the horizon (cosine to T, linear decay) is not and must be listed here as False.
CAUSAL_SCHEDULES = {"constant": True, "plateau": True}


@dataclass(frozen=True)
class AttackConfig:
    """The perturbation of every training sample towards its target label (eps made absolute)."""

    norm: str
    eps: float
    l0_k: int
    targets: str
    steps: int
    step_size: float  # relative to eps


@dataclass(frozen=True)
class TheoryConfig:
    """The lazy-regime theory metrics."""

    enabled: bool
    margins: str  # a key of science.theory.MARGIN_SCALES
    margin_f: float
    margin_g: float


@dataclass(frozen=True)
class DecisionMapConfig:
    """The decision map of one run (the paper's Figure 2)."""

    enabled: bool
    resolution: int
    limits: str | tuple[float, float, float, float]
    padding: float


@dataclass(frozen=True)
class RunConfig:
    """The core of a resolved run, which the engine itself reads. A run's full config is a
    subclass with a field per section its stages declare (train_f, attack, theory, ...), built
    by `spec.sections.run_config_class`; every default is filled in."""

    data: DataConfig
    network: NetworkConfig
    scenario: str
    seed: int
    device: str
    rng: str = field(default=DEFAULT_RNG, kw_only=True, metadata=omitted_when(DEFAULT_RNG))


# PGD's default step, relative to eps, is this budget spread over the steps (2.5 / steps).
PGD_STEP_BUDGET = 2.5


def resolve_data(raw_data: dict[str, Any]) -> DataConfig:
    """A data section as the user wrote it, resolved: which fields apply, and their defaults,
    depend on the data kind."""
    from pl_dsl.science.datasets import data_kind
    from pl_dsl.spec.sections import core_defaults

    return from_json(DataConfig, data_kind(raw_data["kind"]).resolve(raw_data, core_defaults("data")))


def to_json(value: Any, *, identity: bool = False) -> Any:
    """Plain JSON data of a config (dataclasses become dicts, tuples lists).

    With identity=True, fields marked NOT_IDENTITY are left out.
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: to_json(getattr(value, name), identity=identity) for name in kept_fields(value, identity=identity)}
    if isinstance(value, (list, tuple)):
        return [to_json(item, identity=identity) for item in value]
    return value


class JsonCache:
    """`to_json` of configs whose nested configs are shared objects (the runs of a sweep share
    their sections), and its encoding for stable_hash: each nested config is converted and
    encoded once, as long as the cache lives."""

    def __init__(self) -> None:
        # (id, identity) -> (the config, its json, that encoded); the config is kept, so its id stays its own
        self._done: dict[tuple[int, bool], tuple[Any, Any, Encoded]] = {}
        self._scalars: dict[tuple[type, Any], tuple[Any, Any, Encoded]] = {}  # (type, value) -> as _done

    def to_json(self, value: Any, *, identity: bool = False) -> Any:
        """What `to_json(value, identity=identity)` gives; its nested configs from the cache."""
        if not _is_config(value):
            return to_json(value, identity=identity)
        return {name: self._nested(getattr(value, name), identity)[1] for name in kept_fields(value, identity=identity)}

    def encoded(self, value: Any, *, identity: bool = False) -> Encoded:
        """What `encoded(to_json(value, identity=identity))` gives; its nested configs from the cache."""
        if not _is_config(value):
            return encoded(to_json(value, identity=identity))
        return encoded_dict({name: self._nested(getattr(value, name), identity)[2]
                             for name in kept_fields(value, identity=identity)})

    def _nested(self, value: Any, identity: bool) -> tuple[Any, Any, Encoded]:
        if type(value) in _SCALARS:  # by value: equal scalars of many configs are encoded once
            # (a float by its bits: -0.0 == 0.0, and JSON writes them apart)
            scalar = (type(value), value.hex() if type(value) is float else value)
            found = self._scalars.get(scalar)
            if found is None:
                found = self._scalars[scalar] = (value, value, encoded(value))
            return found
        if not _is_config(value):
            plain = to_json(value, identity=identity)
            return value, plain, encoded(plain)
        found = self._done.get((id(value), identity))
        if found is None:
            plain = to_json(value, identity=identity)
            found = self._done[(id(value), identity)] = (value, plain, encoded(plain))
        return found


_SCALARS = (str, int, float, bool, type(None))


def _is_config(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def kept_fields(value: Any, *, identity: bool = False) -> list[str]:
    """The fields of a config dataclass that its plain JSON has (see `to_json`)."""
    rules = _FIELD_RULES.get((type(value), identity))
    if rules is None:
        rules = _FIELD_RULES[(type(value), identity)] = tuple(
            (f.name, "omitted_when" in f.metadata, f.metadata.get("omitted_when")) for f in dataclasses.fields(value)
            if not (identity and f.metadata.get("identity") is False))
    return [name for name, omissible, omitted in rules if not (omissible and getattr(value, name) == omitted)]


# Per config class and identity flag, each field `to_json` may keep: its name, whether a value
# omits it, and which (read once per class: kept_fields runs for every config of a sweep).
_FIELD_RULES: dict[tuple[type, bool], tuple[tuple[str, bool, Any], ...]] = {}


def from_json(cls: type[T], data: Any) -> T:
    """Rebuild a (nested) config dataclass from `to_json` output."""
    values = {name: convert(hint, data[name]) for name, hint in field_hints(cls) if name in data}
    return cls(**values)


_FIELD_HINTS: dict[type, tuple[tuple[str, Any], ...]] = {}


def field_hints(cls: type) -> tuple[tuple[str, Any], ...]:
    """A dataclass's fields with their evaluated type hints (evaluating them is the slow part, so
    it is done once per class)."""
    if cls not in _FIELD_HINTS:
        hints = typing.get_type_hints(cls)
        _FIELD_HINTS[cls] = tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))
    return _FIELD_HINTS[cls]


def convert(hint: Any, value: Any) -> Any:
    """A plain JSON value as the type `hint` holds it (dataclasses and tuples rebuilt)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for option in options:
            if dataclasses.is_dataclass(option) or typing.get_origin(option) is tuple:
                if isinstance(value, (dict, list)):
                    return convert(option, value)
        return value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_json(hint, value)  # type: ignore[arg-type]
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value
