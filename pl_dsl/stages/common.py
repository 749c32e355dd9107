"""What several stages share: the parameters every unit has, random streams for
initialisation, accuracies, and the trained f and g (with g's training inputs) of a run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

from pl_dsl.engine.registry import Output, UnitContext
from pl_dsl.errors import lookup
from pl_dsl.spec.config import (
    DEFAULT_RNG,
    PGD_STEP_BUDGET,
    DataConfig,
    NetworkConfig,
    TrainingConfig,
    omitted_when,
    to_json,
)
from pl_dsl.spec.sections import Resolution, Section

if TYPE_CHECKING:
    import torch

    from pl_dsl.science.data import Dataset
    from pl_dsl.science.nn import TwoLayerNet

# Real data sets leave the sample counts open (every sample); costs assume about this many.
TYPICAL_REAL_SIZES = (12000, 2000)


@dataclass(frozen=True)
class BaseParams:
    """Fields every stage reads: the seed, the data set and the network shape."""

    seed: int
    data: DataConfig
    network: NetworkConfig
    rng: str = field(default=DEFAULT_RNG, kw_only=True, metadata=omitted_when(DEFAULT_RNG))

    def sizes(self) -> tuple[int, int]:
        """(N, test samples), for cost estimates."""
        return (self.data.n_train or TYPICAL_REAL_SIZES[0], self.data.n_test or TYPICAL_REAL_SIZES[1])

    def per_sample(self) -> float:
        """Multiply-adds of one forward pass of one sample."""
        return float(self.data.dim * self.network.width)


@dataclass(frozen=True)
class TrainedParams(BaseParams):
    """Stages that read the trained f and g of a run also need g's scenario."""

    scenario: str


def init_generator(params: BaseParams, role: str) -> torch.Generator:
    """Initialisation depends on seed, data and network only, so networks trained with different
    learning rates start from the same weights (a fair learning-rate grid)."""
    import torch

    from pl_dsl.science.rng import stream_seed

    identity = stream_seed(params.seed, role, params.data.stream_identity(), to_json(params.network))
    return torch.Generator().manual_seed(identity)


def run_dataset(ctx: UnitContext, params: BaseParams) -> Dataset:
    """The data set D and clean test set of a unit's run, from the streams its `rng` names."""
    from pl_dsl.stages.streams import streams

    return streams(params).dataset(ctx, params)


def fit_together(ctx: UnitContext, members: Sequence[BaseParams], role: str,
                 data: Sequence[tuple[torch.Tensor, torch.Tensor]], trainings: Sequence[TrainingConfig]) -> None:
    """Fresh networks of a role ('f' or 'g'), member i initialised from its run's streams and trained on data[i]
    (inputs, labels) with trainings[i], each reported through ctx.emit as `model.pt` (weights and
    final loss, what `ctx.network` reads back) or as its divergence. Members with equal
    trajectories (ctx.member(i).trajectory: the same seed, data, inputs and lr) are one training
    to the largest steps, which hands out each member's network at its own steps (causal
    schedules: the same network, bit for bit, as a training of that length alone). Distinct
    trainings run one after another, or, on CUDA (or forced), as one stacked model: an lr grid,
    and where the plan groups nets by shape, across seeds and inputs too."""
    from pl_dsl.science.nn import Divergence, stacks, train, train_stacked
    from pl_dsl.stages.streams import streams

    trajectories: dict[str, list[int]] = {}
    for index in range(len(members)):
        trajectories.setdefault(ctx.member(index).trajectory, []).append(index)
    groups = list(trajectories.values())
    arithmetic = streams(members[0]).arithmetic()  # one rng per group: it is part of every unit's identity
    configs = [replace(trainings[group[0]], steps=max(trainings[i].steps for i in group)) for group in groups]
    emitted: set[int] = set()

    def emit(group: list[int], steps: int, result: Output | Exception) -> None:
        for index in group:
            if index not in emitted and (isinstance(result, Exception) or trainings[index].steps == steps):
                emitted.add(index)
                ctx.emit(index, result)

    def model_file(net: TwoLayerNet, losses: list[float]) -> Output:
        state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        finite = all(bool(v.isfinite().all()) for v in state.values())
        return Output({"model.pt": {"state": state, "final_loss": losses[-1] if losses else None,
                                    "loss_curve": loss_curve(losses)}},
                      note=None if finite else f"{role} non-finite ({arithmetic.whose})")

    def fresh(group: list[int]) -> TwoLayerNet:
        member = members[group[0]]
        return streams(member).network(ctx, member, role, data[group[0]][0].shape[-1]).to(ctx.device)

    for group in groups:  # zero steps: the initial network
        emit(group, 0, model_file(fresh(group), []))
    if stacks(ctx.device, configs, force=ctx.force_stack, arithmetic=arithmetic):
        train_stacked([fresh(group) for group in groups], [data[group[0]][0] for group in groups],
                      [data[group[0]][1] for group in groups], configs,
                      [{trainings[i].steps for i in group} for group in groups],
                      on_snapshot=lambda g, steps, net, losses: emit(groups[g], steps, model_file(net, losses)),
                      on_diverged=lambda g, error: emit(groups[g], -1, error), on_step=ctx.progress)
        return
    for config, group in zip(configs, groups):
        model = fresh(group)
        x, y = data[group[0]]
        try:
            train(model, x, y, config, on_step=ctx.progress, snapshots={trainings[i].steps for i in group},
                  on_snapshot=lambda steps, losses, group=group, model=model: emit(  # type: ignore[misc]
                      group, steps, model_file(model, losses)), arithmetic=arithmetic)
        except Divergence as error:
            emit(group, -1, error)


# A stored loss curve keeps about this many points (every k-th step, and the last).
LOSS_CURVE_POINTS = 100


def loss_curve(losses: list[float]) -> list[tuple[int, float]]:
    """(step, loss) pairs of a training, thinned to about LOSS_CURVE_POINTS; the loss at step t is
    the one computed before the t-th update (t from 0), the last pair the final loss."""
    every = max(1, math.ceil(len(losses) / LOSS_CURVE_POINTS))
    steps = list(range(0, len(losses), every))
    if losses and steps[-1] != len(losses) - 1:
        steps.append(len(losses) - 1)
    return [(step, losses[step]) for step in steps]


def training_of(network: str, schema_file: str) -> Section:
    """The section of one network's training: the shared `training` with its own overrides."""
    def resolve(context: Resolution) -> dict[str, Any]:
        return {**context.spec["training"], **context.spec[network]}
    return Section(network, TrainingConfig, schema_file, resolve=resolve)


def absolute_eps(section: str) -> Callable[[Resolution], dict[str, Any]]:
    """The resolution of an attack-like section: eps made absolute (eps_per_coord * sqrt(d) for
    the run's own d, so a sweep over data.dim keeps the paper's scaling), PGD's step defaulted."""
    def resolve(context: Resolution) -> dict[str, Any]:
        attack = dict(context.spec[section])
        eps = attack.pop("eps", None)
        per_coord = attack.pop("eps_per_coord")
        attack["eps"] = eps if eps is not None else per_coord * math.sqrt(context.done["data"]["dim"])
        attack.setdefault("step_size", PGD_STEP_BUDGET / attack["steps"])
        return attack
    return resolve


def eps_given_twice(attack: Any) -> list[tuple[str, str]]:
    """eps and eps_per_coord both given (written or swept) would contradict each other."""
    if isinstance(attack, dict) and "eps" in attack and "eps_per_coord" in attack:
        return [("", "give either eps or eps_per_coord, not both (directly or through a sweep)")]
    return []


def passes_cost(params: BaseParams, passes: int) -> float:
    """Multiply-adds of `passes` forward-and-backward passes over D (about 3 forward passes each)."""
    return 3.0 * passes * params.sizes()[0] * params.per_sample()


def data_bytes(params: BaseParams) -> float:
    """Bytes of the training and test inputs in float32."""
    n_train, n_test = params.sizes()
    return 4.0 * (n_train + n_test) * params.data.dim


def working_bytes(params: BaseParams, data_copies: int) -> float:
    """Bytes a unit holds while training or attacking one network: `data_copies` arrays the size
    of the data (x; for g also the perturbations and its inputs), the hidden layer's activations
    with their gradients (about four N x m arrays) and the weights with gradients and momentum."""
    n_train = params.sizes()[0]
    return data_copies * data_bytes(params) + 16.0 * n_train * params.network.width \
        + 12.0 * params.data.dim * params.network.width


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return (pred == labels).sum().item() / len(labels)


SCENARIOS: dict[str, Any] = {
    "a": lambda x, delta: delta,  # g learns from the perturbation r_n only
    "b": lambda x, delta: x + delta,  # from the adversarial example x_n + r_n
}


def adversarial_inputs(scenario: str, data: Dataset, delta: torch.Tensor) -> torch.Tensor:
    """g's training inputs under a scenario."""
    return lookup(SCENARIOS, scenario, "scenario")(data.x, delta.to(data.x.device))  # type: ignore[no-any-return]


class Trained(NamedTuple):
    """What a run's trained pair is made of, read from the inputs f, attack and g."""

    data: Dataset
    f: TwoLayerNet
    g: TwoLayerNet
    attack: dict[str, Any]  # the perturbations file: delta (r_n) and y_adv
    x_adv: torch.Tensor  # g's training inputs under the run's scenario


def load_trained(ctx: UnitContext, params: TrainedParams) -> Trained:
    """The data, f, g, the perturbations and g's training inputs of a unit's run."""
    data = run_dataset(ctx, params)
    dim = data.x.shape[1]
    f = ctx.network("f", params.network, dim)
    g = ctx.network("g", params.network, dim)
    attack = ctx.load("attack", "perturbations.pt")
    return Trained(data, f, g, attack, adversarial_inputs(params.scenario, data, attack["delta"]))


TRAINED_INPUTS = {"f": "train_f", "attack": "attack", "g": "train_g"}
