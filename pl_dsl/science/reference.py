"""The authors' random streams (`rng: reference`): every draw their train.py makes, in its order.

Their script seeds the global generators once (`set_seed`) and then draws, in this order: f's
network on the CPU (nn.Linear's own initialisation, then `normal_` of its weight and bias, then
the readout by `torch.normal`), the training set on the run's device (real data through a
DataLoader, whose iterator draws one int64 from the CPU generator), the target labels on the
device, g's network on the CPU, and the samples agreement is measured on, on the device.
Full-batch training and the one-step attack draw nothing. A stage of pl-dsl that needs the k-th
of these replays the first k from the seed, inside `torch.random.fork_rng`, so its draws depend
on the seed and the shapes alone, never on what ran before in the process, and the process's
own generators are left as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributions.normal import Normal
from torch.nn import functional as F

from pl_dsl.errors import lookup
from pl_dsl.science.nn import Arithmetic, TwoLayerNet, input_gradient
from pl_dsl.spec.config import DataConfig, NetworkConfig

# Their synthetic generator draws this many fresh samples for the agreement (train=False).
TEST_SAMPLES = 1000


def _written(value: Any) -> str:
    """A value as a spec writes it (true, not Python's True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _one_of(*allowed: Any) -> tuple[Callable[[Any], bool], str]:
    return (lambda value: value in allowed), " or ".join(_written(a) for a in allowed)


# What reference mode replays, field by field of a resolved run: (whether a value is replayed,
# what is). `pl-dsl validate` refuses a run in reference mode with any other value.
_THEIR_TRAINING = {"optimizer": _one_of("sgd"), "momentum": _one_of(0.9), "schedule": _one_of("plateau"),
                   "loss": _one_of("identity", "logistic")}
_SYNTHETIC = {"data.n_train": ((lambda n: n is not None and n % 2 == 0), "an even count (their generator asserts it)"),
              "data.n_test": _one_of(TEST_SAMPLES)}
# Their Shifted Gauss generator hard-codes the class means +-0.3 in every coordinate.
THEIR_MEAN_SHIFT = 0.3
_EVERY_SAMPLE = ((lambda n: n is None), "every sample of the two classes (no count given)")


def _their_pair(pair: tuple[int, int]) -> tuple[Callable[[Any], bool], str]:
    return (lambda classes: classes is not None and tuple(classes) == pair), f"[{pair[0]}, {pair[1]}]"


def _their_classes(pair: tuple[int, int]) -> dict[str, tuple[Callable[[Any], bool], str]]:
    return {"data.n_train": _EVERY_SAMPLE, "data.n_test": _EVERY_SAMPLE, "data.classes": _their_pair(pair)}


# Per data kind, what their script's data set holds (utils/datasets.py: MNIST 1 vs 2, FMNIST 0 vs 9,
# every sample of the two classes; their synthetic generator: n even, 1000 test samples). These are
# checked also where the value is absent.
SUPPORTED_DATA: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "gauss": _SYNTHETIC, "shifted_gauss": {**_SYNTHETIC, "data.mean_shift": _one_of(THEIR_MEAN_SHIFT)},
    "mnist": _their_classes((1, 2)), "fmnist": _their_classes((0, 9))}
SUPPORTED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data.kind": _one_of(*SUPPORTED_DATA),
    "network.readout": _one_of("gaussian"),
    "network.bias": _one_of(True),
    **{f"{network}.{name}": rule for network in ("train_f", "train_g") for name, rule in _THEIR_TRAINING.items()},
    "attack.norm": _one_of("l2"),
    "attack.steps": _one_of(1),
    "attack.targets": _one_of("random"),
}


# Every other field of a resolved run, and why reference mode takes any value of it: a value their
# command line takes, replayed as their train.py uses it, or a field that changes none of the
# numbers their script computes. A section's name covers all its fields. tests/
# test_reference_streams.py walks a resolved run: a field added to the language must be listed
# here or refused above.
REPLAYED: dict[str, str] = {
    "data.kind": "their data_gen_method (synthetic) or dataset_name (real)",
    "data.dim": "their in_dim", "data.n_train": "their n_sample",
    "network.width": "their hidden_dim", "network.leaky_slope": "their slope",
    "train_f.loss": "their loss_name", "train_g.loss": "their loss_name (the same as f's: checked)",
    "train_f.steps": "their epochs_1", "train_g.steps": "their epochs_2",
    "train_f.lr": "their lr_1", "train_g.lr": "their lr_2",
    "train_f.precision": "fp32 (their CPU port), or fp16 on CUDA (their precision=16): checked",
    "train_g.precision": "as train_f.precision",
    "attack.eps": "their perturbation_size", "scenario": "their --on_original (b)", "seed": "their seed",
    "device": "where their draws and arithmetic run (the CPU, or CUDA as their GPU launch)",
    "rng": "this mode",
}
WITHOUT_EFFECT: dict[str, str] = {
    "data.root": "where the files lie, not what they hold",
    "data.content": "the files' checksum (the files are read as their loader reads them)",
    "attack.l0_k": "read by the l0 norm only, which is refused",
    "attack.step_size": "read by PGD only (attack.steps is 1)",
    "theory": "metrics of pl-dsl's own, computed beside their numbers from the trained networks",
    "decision_map": "drawn with their map.py's Monte-Carlo Phi from the trained networks",
    "robustness": "metrics of pl-dsl's own attack on the trained networks, beside their numbers",
}


def accounted_for(path: str) -> bool:
    """Whether a resolved run's field is refused, replayed or without effect in reference mode."""
    declared = {*SUPPORTED, *(field for rules in SUPPORTED_DATA.values() for field in rules), *REPLAYED, *WITHOUT_EFFECT}
    return path in declared or path.split(".")[0] in WITHOUT_EFFECT


def _value(run: Any, path: str) -> Any:
    value: Any = run
    for part in path.split("."):
        value = getattr(value, part, None)
    return value


def _shown(value: Any) -> str:
    return "every sample" if value is None else _written(list(value) if isinstance(value, tuple) else value)


def unsupported(run: Any) -> list[tuple[str, str]]:
    """(field, sentence) for each value of a resolved run that reference mode does not replay."""
    rules = [(path, rule, False) for path, rule in SUPPORTED.items()]
    rules += [(path, rule, True) for path, rule in SUPPORTED_DATA.get(run.data.kind, {}).items()]
    found = []
    for path, (replayed, what), even_absent in rules:
        value = _value(run, path)
        if (value is not None or even_absent) and not replayed(value):
            found.append((path, f"rng: reference replays the authors' train.py, which has {path} = {what}; "
                                f"this run has {_shown(value)}"))
    if run.train_g.loss != run.train_f.loss:
        found.append(("train_g.loss", f"rng: reference replays the authors' train.py, which trains f and g with one "
                                      f"loss; this run has {run.train_f.loss} for f and {run.train_g.loss} for g"))
    precision = [n for n in ("train_f", "train_g") if getattr(run, n).precision != "fp32" and run.device != "cuda"]
    found += [(f"{n}.precision", "rng: reference trains in fp32 on the CPU (fp16 only on CUDA, as their "
                                 "LightningLite(precision=16))") for n in precision]
    return found


# The draws of one run, in the order the authors' train.py makes them.
ORDER = ("f", "data", "targets", "g", "test")


@dataclass(frozen=True)
class NetDraw:
    """A network as their TwoLayerNet initialises it: hidden weight (m, d), bias (m), readout (m)."""

    weight: torch.Tensor
    bias: torch.Tensor
    readout: torch.Tensor


@dataclass
class Draws:
    """What a run draws up to the stage that asked (later fields stay None)."""

    f: NetDraw | None = None
    x: torch.Tensor | None = None
    y: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    g: NetDraw | None = None
    x_test: torch.Tensor | None = None
    y_test: torch.Tensor | None = None


@contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Their set_seed, for the generators a run draws from (the CPU's and, on CUDA, the run's
    device's), inside a fork of those generators, so nothing outside sees the draws."""
    cuda = [torch.device(device).index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def their_net(dim: int, width: int) -> NetDraw:
    """utils/classifier.py's TwoLayerNet.__init__, on the CPU: nn.Linear (its own init draws
    first), then normal_ of weight (std 1/sqrt(d)) and bias (std 1), then the readout."""
    linear = nn.Linear(dim, width)
    nn.init.normal_(linear.weight, 0, 1 / math.sqrt(dim))
    nn.init.normal_(linear.bias, 0, 1)
    readout = torch.normal(0, 1 / math.sqrt(width), (1, width))
    return NetDraw(linear.weight.detach().clone(), linear.bias.detach().clone(), readout.flatten())


def rand_labels(n: int, device: torch.device) -> torch.Tensor:
    """Their gen_rand_labels: i.i.d. uniform +-1 (as floats here; theirs are integers of equal value)."""
    return (2 * torch.randint(0, 2, (n,), device=device) - 1).float()


def _gauss(n: int, data: DataConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.normal(0, 1, (n, data.dim), device=device)
    return x, rand_labels(n, device)


def _shifted_gauss(n: int, data: DataConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    assert data.mean_shift is not None and n % 2 == 0
    half = n // 2
    mean = torch.full((data.dim,), data.mean_shift, device=device)
    std = torch.ones(data.dim, device=device)
    # validate_args=False: the same draws as their Normal(mean, std), without reading values back
    # (which a device that only records shapes, as the draw-order test uses, cannot do)
    positive = Normal(mean, std, validate_args=False).sample((half,))  # type: ignore[no-untyped-call]
    negative = Normal(-mean, std, validate_args=False).sample((half,))  # type: ignore[no-untyped-call]
    x = torch.vstack([positive, negative])
    return x, torch.cat((torch.ones(half, device=device), -torch.ones(half, device=device)))


# Their gen_data_and_labels per data kind: (data, train split or not, device) -> samples, labels.
Split = Callable[[DataConfig, bool, torch.device], tuple[torch.Tensor, torch.Tensor]]


def _synthetic(sample: Callable[[int, DataConfig, torch.device], tuple[torch.Tensor, torch.Tensor]]) -> Split:
    """Their synthetic gen_data_and_labels: n_train samples for D, TEST_SAMPLES fresh ones for the test."""
    def split(data: DataConfig, train: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        assert data.n_train is not None
        return sample(data.n_train if train else TEST_SAMPLES, data, device)
    return split


def _real_split(data: DataConfig, train: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Their select_data_and_labels (utils/datasets.py): the whole split through a DataLoader, whose
    iterator draws one int64 (its workers' base seed) from the CPU generator; then the samples of
    the two classes in the files' order, labels +1 for the first class, pixels ToTensor's /255
    minus the data set's mean; moved to the device."""
    import numpy as np

    from pl_dsl.science.datasets import REAL_DATASETS, load_split

    assert data.classes is not None
    images, labels = load_split(data.kind, data.root, "train" if train else "test", data.content)
    torch.empty((), dtype=torch.int64).random_()  # DataLoader.__iter__: the workers' base seed
    positive, negative = data.classes
    keep = (labels == positive) | (labels == negative)
    x = torch.from_numpy(np.ascontiguousarray(images[keep])).float().div(255)
    x -= REAL_DATASETS[data.kind].mean[0]
    y = torch.where(torch.from_numpy(labels[keep].astype(np.int64)) == positive, 1.0, -1.0)
    return x.to(device), y.to(device)


GENERATORS: dict[str, Split] = {"gauss": _synthetic(_gauss), "shifted_gauss": _synthetic(_shifted_gauss),
                                "mnist": _real_split, "fmnist": _real_split}


def draws(seed: int, data: DataConfig, network: NetworkConfig, device: torch.device, until: str) -> Draws:
    """Replay their draws from the seed up to and including `until` (one of ORDER)."""
    generate = lookup(GENERATORS, data.kind, "data kind in reference mode")
    steps = ORDER[:ORDER.index(until) + 1]
    drawn = Draws()
    with seeded(seed, device):
        drawn.f = their_net(data.dim, network.width)
        if "data" in steps:
            drawn.x, drawn.y = generate(data, True, device)
        if "targets" in steps:
            assert drawn.x is not None
            drawn.targets = rand_labels(len(drawn.x), device)
        if "g" in steps:
            drawn.g = their_net(data.dim, network.width)
        if "test" in steps:
            drawn.x_test, drawn.y_test = generate(data, False, device)
    return drawn


# Their decision maps (map.py) estimate the kernel Phi by Monte Carlo: `--samplings` draws of (v, a),
# 100 by default, reseeded with 0 at every call (utils/theory.py's Phi).
MAP_SAMPLES = 100
MAP_SEED = 0


def their_phi(z1: torch.Tensor, z2: torch.Tensor, gamma: float, samples: int = MAP_SAMPLES) -> torch.Tensor:
    """utils/theory.py's Phi(z1, z2, gamma, samples, MAP_SEED): v ~ N(0, I/d) and a ~ N(0, 1)
    drawn after their set_seed(0) on z1's device, then the mean over the draws of the product of
    the leaky-ReLU slopes (1 where v.z + a >= 0, else gamma) at z1_i and at z2_j."""
    d = z1.shape[1]
    with seeded(MAP_SEED, z1.device):
        v = torch.normal(0, 1 / math.sqrt(d), (samples, d), device=z1.device)
        a = torch.normal(0, 1, (samples, 1), device=z1.device)
    slopes1 = torch.where(v @ z1.T + a >= 0, 1., gamma)
    slopes2 = torch.where(v @ z2.T + a >= 0, 1., gamma)
    return slopes1.T @ slopes2 / samples


# Their arithmetic (train.py's _TrainingInterface), operation for operation in the run's precision:
# the losses of (outputs, labels), the attack, and training that goes on through a non-finite loss.
def _their_identity(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return -outputs * labels


def _their_logistic(outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(1 + exp(-y f)) as written: in fp32, exp overflows above a margin of -88.72 (the loss is
    inf and its gradient NaN), and 1 + exp(-s) rounds to 1 above a margin of about 16.6."""
    return torch.log(1 + _their_identity(outputs, labels).exp())


THEIR_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "identity": _their_identity, "logistic": _their_logistic}


def their_loss(name: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of their train.py (`identity`, `logistic`)."""
    return lookup(THEIR_LOSSES, name, "loss in reference mode")(outputs, labels)


THEIR_ARITHMETIC = Arithmetic("as their code", their_loss, stops_when_not_finite=False, stacks=False)


def their_perturbations(model: TwoLayerNet, x: torch.Tensor, targets: torch.Tensor, loss: str,
                        eps: float) -> torch.Tensor:
    """Their gen_perturbations: the gradient of the summed loss at the targets, F.normalize'd per
    sample (its norm floored at 1e-12, so a gradient shorter than that gives a perturbation shorter
    than eps, down to 0), times eps, negated; no projection, and a NaN gradient gives a NaN row."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    grad = input_gradient(model, x, targets, loss, THEIR_ARITHMETIC)
    return -(F.normalize(grad.flatten(1)).view(grad.shape) * eps)
