"""Stage declarations and the registry the engine reads: everything about a stage in one object.

A stage is declared once, next to its computation (see `pl_dsl/stages/`): its name, its named
inputs (other stages), the typed parameters that form its identity, what it writes, the
metrics it reports, a cost estimate, its batch size and whether it may use a GPU. Planning,
paths, the Snakemake rules and the results table are all driven by these declarations.
Torch-free: the Snakefile reads the registry at every start.
"""

from __future__ import annotations

import dataclasses
import importlib
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pl_dsl.engine.fingerprint import code_fingerprint
from pl_dsl.errors import lookup
from pl_dsl.spec.config import RunConfig, kept_fields, to_json
from pl_dsl.spec.sections import CORE_SECTIONS, Section, build_schema

if TYPE_CHECKING:
    import torch

    from pl_dsl.science.data import Dataset
    from pl_dsl.science.nn import TwoLayerNet
    from pl_dsl.spec.config import DataConfig, NetworkConfig

P = TypeVar("P")


class UnitContext(Protocol):
    """What a stage's computation may ask of the engine while computing one unit."""

    device: torch.device

    def dataset(self, data: DataConfig, seed: int) -> Dataset:
        """The data set (cached per process), on this unit's device."""

    def load(self, input_name: str, file: str) -> Any:
        """A file written by the unit of one of this stage's named inputs."""

    def network(self, input_name: str, network: NetworkConfig, dim: int) -> TwoLayerNet:
        """The trained network an input unit stored as `model.pt`, on this unit's device."""

    def progress(self, step: int, steps: int, loss: float) -> None:
        """Step `step` of `steps` of a long computation is done (shown every few seconds)."""

    @property
    def trajectory(self) -> str:
        """For `compute_together`: members with equal trajectories are one training (they differ
        at most in steps, and each is a step prefix of the longest)."""

    @property
    def force_stack(self) -> bool:
        """Train the group's nets as one stacked model even on the CPU (`--config stack=on`)."""

    def member(self, index: int) -> UnitContext:
        """For `compute_together`: the context of member `index` (its own inputs)."""

    def emit(self, index: int, result: Output | Exception) -> None:
        """For `compute_together`: member `index` is finished (an Output) or diverged (the
        nn.Divergence); the engine stores it at once."""


_SCALARS = (int, float, str, bool, type(None))


@dataclass(frozen=True)
class Output:
    """What one unit's computation produced: files (by name, written in the format their suffix
    names; see `engine.store.FORMATS`) and metrics (columns of the results table)."""

    files: dict[str, Any]
    metrics: dict[str, float | None] = field(default_factory=dict)
    # Set where the result is computed but a reader must be told about it (a network or
    # perturbations that went non-finite, as the authors' code goes on with them): stored with
    # the status `non-finite` and this note, and read on by the stages after it.
    note: str | None = None


@dataclass(frozen=True)
class Stage(Generic[P]):
    """The declaration of one pipeline stage."""

    name: str
    params: type[P]  # a frozen dataclass: the resolved-run fields this stage reads = its identity
    writes: Mapping[str, str]  # file name -> what it holds
    metrics: Mapping[str, str]  # metric name -> description (docs, report captions, plots)
    cost: Callable[[P], float]  # estimated multiply-adds of one unit: batching, cluster runtime, status
    memory: Callable[[P], float] = lambda params: 0.0  # bytes one unit holds beyond the process: cluster memory
    inputs: Mapping[str, str] = field(default_factory=dict)  # input name -> stage name
    rename: Mapping[str, str] = field(default_factory=dict)  # params field -> RunConfig field, if named apart
    batch_size: int = 16  # units per job at most
    gpu: bool = True  # may compute on CUDA
    switch: str | None = None  # boolean field of the run that turns this stage on (None: always on)
    run_files: tuple[str, ...] = ()  # files copied into results/<experiment>/runs/<run>/
    version: int = 1  # bump to recompute where the fingerprint cannot see a change
    compute: Callable[[UnitContext, P], Output] | None = None  # one unit
    # A stage that trains a network names the params field holding its TrainingConfig and
    # computes a group of units at once: units that differ only in that training's lr and, for
    # a causal schedule, its steps (see TrainingConfig.causal) share one batch and one call,
    # which reports each member through ctx.emit (step-prefix snapshots, stacked nets on CUDA).
    # Where nets are stacked by shape (device cuda, or `--config stack=on`), a group also spans
    # seeds and inputs: the computation reads each member's own through ctx.member(i).
    trains: str | None = None
    compute_together: Callable[[UnitContext, Sequence[P]], None] | None = None
    # The spec sections this stage brings (its own parameters: schema, type, resolution); the
    # run config and the experiment schema are assembled from every registered stage's.
    sections: tuple[Section, ...] = ()
    # Metrics scored against the test set's true labels: chance by construction on data whose
    # labels are random (validate warns when a figure or claim reads them there).
    test_label_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.compute is None) == (self.compute_together is None):
            raise ValueError(f"stage {self.name!r} must declare exactly one of compute and compute_together")
        if (self.trains is None) != (self.compute_together is None):
            raise ValueError(f"stage {self.name!r}: compute_together and trains go together")

    def group_key(self, params: P, keep_lr: bool = False, stack: bool = False) -> Any:
        """Units of this stage with equal group keys (and equal inputs) are computed together:
        the parameters with the trained network's lr (unless keep_lr: then equal keys share one
        training) and, for causal schedules only, its steps blanked. With `stack` (nets of one
        shape trained as one stacked model, see `stack_key`) the seed is blanked too."""
        if self.trains is None:
            return params
        key = dataclasses.replace(params, **{self.trains: _blank_training(getattr(params, self.trains), keep_lr)})  # type: ignore[type-var]
        return dataclasses.replace(key, seed=0) if stack and hasattr(key, "seed") else key  # type: ignore[type-var]

    def select(self, run: RunConfig) -> P:
        """This stage's parameters for one run."""
        return self.params(**{f.name: getattr(run, self.rename.get(f.name, f.name))
                              for f in dataclasses.fields(self.params)})  # type: ignore[arg-type]

    @cached_property
    def sections_in_order(self) -> tuple[str, ...]:
        """The run config fields (sections) this stage's parameters come from, in field order."""
        return tuple(self.rename.get(f.name, f.name) for f in dataclasses.fields(self.params))  # type: ignore[arg-type]

    @cached_property
    def sections_read(self) -> frozenset[str]:
        return frozenset(self.sections_in_order)

    def point(self, run: RunConfig) -> tuple[Any, ...]:
        """What this stage's parameters for a run are made of, as a dict key: the sections they
        come from, scalars by value and configs by identity (the runs of one sweep share the
        section objects of equal values, see spec.sections.SweepResolver). Equal points give equal
        parameters while the runs they come from are alive."""
        return tuple([(type(v), v) if type(v) in _SCALARS else id(v) for v in self._sections_of(run)])

    @cached_property
    def _sections_of(self) -> Callable[[RunConfig], tuple[Any, ...]]:
        names = self.sections_in_order
        get = operator.attrgetter(*names)
        return (lambda run: (get(run),)) if len(names) == 1 else get

    def enabled(self, run: RunConfig) -> bool:
        """Whether the run has this stage."""
        return self.switch is None or bool(self._switch_of(run))

    @cached_property
    def _switch_of(self) -> Callable[[RunConfig], Any]:
        return operator.attrgetter(self.switch or "")

    @cached_property
    def fingerprint(self) -> str:
        """Hash of the code that computes this stage (see engine.fingerprint) and its version."""
        return f"{code_fingerprint(self.module)}.v{self.version}"

    @property
    def module(self) -> str:
        """The module whose code computes this stage."""
        return (self.compute or self.compute_together).__module__

    @property
    def all_metrics(self) -> dict[str, str]:
        """Its declared metrics plus the seconds it took (time_<stage>)."""
        return {**self.metrics, f"time_{self.name}": f"seconds spent in {self.name}"}


@lru_cache(maxsize=4096)
def _blank_training(training: Any, keep_lr: bool) -> Any:
    """A training config with its lr (unless keep_lr) and, for a causal schedule, its steps blanked:
    one object per distinct value, so that the group keys of a plan share it (see JsonCache)."""
    return dataclasses.replace(training, lr=training.lr if keep_lr else 0.0,
                               steps=0 if training.causal else training.steps)


class Registry:
    """The stages in dependency order, looked up by name; unknown names are errors."""

    def __init__(self, stages: Iterable[Stage[Any]], extra_modules: tuple[str, ...] = ()) -> None:
        self.extra_modules = extra_modules  # the modules of a project's own stages (see `extended`)
        self._stages: dict[str, Stage[Any]] = {}
        self._read_by_enabled: dict[tuple[bool, ...], frozenset[str]] = {}
        metrics: dict[str, str] = {}
        sections: dict[str, str] = {section.name: "the core" for section in CORE_SECTIONS}
        for stage in stages:
            if stage.name in self._stages:
                raise ValueError(f"stage {stage.name!r} is registered twice")
            for input_name, source in stage.inputs.items():
                if source not in self._stages:
                    raise ValueError(f"stage {stage.name!r}: input {input_name!r} needs stage {source!r}, "
                                     "which must be registered before it")
            for metric in stage.all_metrics:
                if metric in metrics:
                    raise ValueError(f"metric {metric!r} is declared by stages {metrics[metric]!r} and {stage.name!r}")
                metrics[metric] = stage.name
            for section in stage.sections:
                if section.name in sections:
                    raise ValueError(f"section {section.name!r} is declared by {sections[section.name]} and by stage "
                                     f"{stage.name!r}")
                sections[section.name] = f"stage {stage.name!r}"
            self._stages[stage.name] = stage

    def __iter__(self) -> Iterator[Stage[Any]]:
        return iter(self._stages.values())

    def __getitem__(self, name: str) -> Stage[Any]:
        return lookup(self._stages, name, "stage")

    @property
    def names(self) -> list[str]:
        return list(self._stages)

    @property
    def sections(self) -> tuple[Section, ...]:
        """The core sections, then each stage's, in stage order: the parts of a run's spec."""
        return (*CORE_SECTIONS, *(section for stage in self for section in stage.sections))

    @cached_property
    def schema(self) -> dict[str, Any]:
        """The experiment schema of these stages (see spec.sections.build_schema)."""
        return build_schema(self.sections)

    def read_sections(self, run: RunConfig) -> set[str]:
        """The sections a run reads: the core ones and every one an enabled stage reads."""
        enabled = tuple(stage.enabled(run) for stage in self)
        if enabled not in self._read_by_enabled:
            read = {section.name for section in CORE_SECTIONS}
            for stage, on in zip(self, enabled):
                if on:
                    read.update(stage.sections_read)
            self._read_by_enabled[enabled] = frozenset(read)
        return set(self._read_by_enabled[enabled])

    def run_identity(self, run: RunConfig, plain: Mapping[str, Any] | None = None,
                     read: set[str] | None = None) -> dict[str, Any]:
        """What names a run (its id is a hash of this): the sections it reads. A section only
        switched-off stages read (a stage a project adds, off by default) leaves every run's id
        as it was. `plain` (the run's sections as plain JSON, or Encoded for stable_hash) and
        `read` (read_sections of the run), when known already."""
        read = self.read_sections(run) if read is None else read
        if plain is None:
            return {name: value for name, value in to_json(run).items() if name in read}
        return {name: plain[name] for name in kept_fields(run) if name in read}

    def metrics(self) -> dict[str, str]:
        """Every metric any stage reports, with its description, in stage order."""
        return {name: text for stage in self for name, text in stage.all_metrics.items()}

    def stage_of_metric(self, metric: str) -> Stage[Any]:
        """The stage that reports a metric."""
        return lookup({m: s for s in self for m in s.all_metrics}, metric, "metric")

    def leaves(self, present: Iterable[str]) -> list[str]:
        """Among the present stages, those no other present stage reads: their completion
        implies every stage of the run is complete."""
        present = set(present)
        consumed = {source for name in present for source in self[name].inputs.values()}
        return [name for name in self._stages if name in present and name not in consumed]

    def extended(self, modules: Iterable[str]) -> Registry:
        """This registry plus the `STAGE` declared by each named module (a user's own stages)."""
        extra = []
        for module in modules:
            declared = getattr(importlib.import_module(module), "STAGE", None)
            if not isinstance(declared, Stage):
                raise ValueError(f"module {module!r} declares no STAGE")
            extra.append(declared)
        return Registry([*self, *extra], (*self.extra_modules, *modules)) if extra else self


def stage_modules(value: str | Iterable[str] | None) -> list[str]:
    """The extra stage modules named in config (`stage_modules=a.b,c.d` or a list)."""
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [item.strip() for item in items if item.strip()]
