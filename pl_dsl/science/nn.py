"""The two-layer network with a frozen readout, the margin losses, and full-batch training."""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
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


# Each loss's derivative in the margin s, for the gradients computed by hand (`ByHand`).
LOSS_SLOPES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "identity": lambda margin: torch.full_like(margin, -1.0),
    "logistic": lambda margin: -torch.sigmoid(-margin),
    "exponential": lambda margin: -torch.exp(-margin),
}


# Losses whose derivative in the margin is a constant: `ByHand` computes their g = l' y / N once.
CONSTANT_SLOPES: dict[str, float] = {"identity": -1.0}


def margin_loss(name: str, margin: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of the margins s = y f(x)."""
    return lookup(LOSSES, name, "loss")(margin)


def own_loss(name: str, outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample loss of outputs f(x) at labels y, through the margins y f(x)."""
    return margin_loss(name, labels * outputs)


@dataclass(frozen=True)
class Arithmetic:
    """How a run's training computes: its per-sample loss of (loss name, outputs, labels), whether
    a non-finite loss stops training (pl-dsl) or training goes on with it (the authors' code),
    whether nets may train stacked and whether fp32 gradients are computed by hand (`ByHand`, or
    `InKernelForm` where it has fewer multiply-adds) instead of by autograd (each a computation of
    its own, equal up to rounding); `whose` names it in notes to readers."""

    whose: str
    loss: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]
    stops_when_not_finite: bool
    stacks: bool
    by_hand: bool = False


OWN_ARITHMETIC = Arithmetic("pl-dsl's arithmetic", own_loss, stops_when_not_finite=True, stacks=True, by_hand=True)


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


# ByHand works through D in blocks of rows holding about this many hidden units (1 MiB in fp32),
# so that a block's arrays stay in the core's cache from the forward product to the backward one.
BLOCK_ELEMENTS = 256 * 1024

# InKernelForm trains a net when its step's multiply-adds are below this share of ByHand's
# (measured: benchmarks/kernel_form.py); the rest of a step (elementwise passes over N x m) is
# alike in both, and x x^T once costs about as much as N/m steps.
KERNEL_MARGIN = 0.9


def _phi_(pre: torch.Tensor, slope: float) -> None:
    """phi(pre) in place: the leaky ReLU (plain ReLU at slope 0)."""
    if slope == 0.0:
        pre.relu_()
    else:
        F.leaky_relu_(pre, slope)


def _phi_backward_(grad: torch.Tensor, hidden: torch.Tensor, slope: float) -> None:
    """grad * phi'(pre) in place, from hidden = phi(pre), as autograd computes phi's backward."""
    if slope == 0.0:
        torch.ops.aten.threshold_backward.grad_input(grad, hidden, 0.0, grad_input=grad)
    else:
        torch.ops.aten.leaky_relu_backward.grad_input(grad, hidden, slope, True, grad_input=grad)


class ByHand:
    """The gradients of a two-layer net's mean margin loss on full-batch data, computed by hand
    in fp32: one matrix product forward (pre = x W^T + b) and one backward, block of rows by
    block of rows (each block's arrays stay in cache), in buffers kept from step to step (no
    autograd graph, no fresh N x m arrays each step), in few operations (a small net's step is
    mostly their fixed cost).

    With h = phi(pre), g_n = l'(y_n f(x_n)) y_n / N and G = phi'(pre) * (g a^T) (phi's backward
    as autograd computes it from h: threshold_backward, leaky_relu_backward): dW = G^T x,
    db = G^T 1. A loss of constant slope (CONSTANT_SLOPES) has its g computed once. Outputs, losses
    and gradients equal autograd's up to float rounding (tests/test_math.py)."""

    def __init__(self, model: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, loss: str) -> None:
        self.model, self.x, self.y, self.loss = model, x, y, loss
        self.slope = lookup(LOSS_SLOPES, loss, "loss")
        n, width = len(x), model.weight.shape[0]
        self.rows = max(1, min(n, BLOCK_ELEMENTS // width))
        self.hidden = x.new_empty(self.rows, width)  # pre, then phi(pre) in place
        self.backward = x.new_empty(self.rows, width)  # g a^T, then G
        self.ones = x.new_ones(self.rows)  # db = G^T 1
        self.fixed = y * (CONSTANT_SLOPES[loss] / n) if loss in CONSTANT_SLOPES else None  # g, whatever the margins
        for parameter in model.parameters():
            parameter.grad = torch.zeros_like(parameter)

    def step(self) -> torch.Tensor:
        """Set the parameters' .grad to the loss's gradient; returns the mean loss (a 0-d tensor)."""
        model = self.model
        weight, bias, readout, slope = model.weight.detach(), model.bias, model.readout, model.leaky_slope
        weight_grad, bias_grad = model.weight.grad, bias.grad if bias is not None else None
        assert weight_grad is not None
        n = len(self.x)
        losses = []
        with torch.no_grad():
            for start in range(0, n, self.rows):
                x, y = self.x[start:start + self.rows], self.y[start:start + self.rows]
                hidden, backward, ones = self.hidden[:len(x)], self.backward[:len(x)], self.ones[:len(x)]
                if bias is not None:
                    torch.addmm(bias, x, weight.t(), out=hidden)
                else:
                    torch.mm(x, weight.t(), out=hidden)
                _phi_(hidden, slope)
                margin = torch.mv(hidden, readout).mul_(y)
                losses.append(margin_loss(self.loss, margin).sum())
                g = self.fixed[start:start + self.rows] if self.fixed is not None else \
                    self.slope(margin).mul_(y).div_(n)
                torch.mul(g[:, None], readout, out=backward)  # g a^T
                _phi_backward_(backward, hidden, slope)
                if start == 0:
                    torch.mm(backward.t(), x, out=weight_grad)
                    if bias_grad is not None:
                        torch.mv(backward.t(), ones, out=bias_grad)
                else:
                    weight_grad.addmm_(backward.t(), x)
                    if bias_grad is not None:
                        bias_grad.addmv_(backward.t(), ones)
        total = losses[0] if len(losses) == 1 else torch.stack(losses).sum()
        return total / n


class InKernelForm:
    """Full-batch momentum SGD of a two-layer net's first layer in the span of the data: every
    gradient is dW = G^T x, db = G^T 1 (see ByHand), so W_t = W_0 + C_t^T x and b_t = b_0 + C_t^T 1,
    and SGD moves only the N x m coefficients C. The pre-activations x W_t^T + b_t are
    (x W_0^T + b_0) + (x x^T + 1 1^T) C_t: one N x N x m product a step against ByHand's two
    N x d x m ones, fewer multiply-adds when N < 2d. Arrays are held as m x N (C^T (x x^T + 1 1^T)),
    which MKL computes several times faster than N x m at small m. The same training up to float
    rounding (tests/test_math.py); the model's weights are written back on request (`write_back`)."""

    def __init__(self, model: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig) -> None:
        self.model, self.y, self.loss, self.momentum = model, y, config.loss, config.momentum
        self.slope = lookup(LOSS_SLOPES, config.loss, "loss")
        self.schedule = lookup(HAND_SCHEDULES, config.schedule, "schedule")(config.lr)
        weight, bias = model.weight.detach(), model.bias
        self.x, self.start = x, weight.clone()
        self.start_bias = bias.detach().clone() if bias is not None else None
        self.kernel = torch.mm(x, x.t())
        if bias is not None:
            self.kernel.add_(1.0)  # the bias: a weight on a constant input 1
        # m x N: the pre-activations at W_0, b_0 (transposed), then the coefficients C^T
        self.base = torch.addmm(bias.detach()[:, None], weight, x.t()) if bias is not None else torch.mm(weight, x.t())
        self.coefficients = torch.zeros_like(self.base)
        self.velocity: torch.Tensor | None = None
        self.hidden, self.backward = torch.empty_like(self.base), torch.empty_like(self.base)
        self.fixed = y * (CONSTANT_SLOPES[config.loss] / len(x)) if config.loss in CONSTANT_SLOPES else None

    def step(self) -> torch.Tensor:
        """The mean loss at the current weights (a 0-d tensor); keeps G^T = (dLoss/dpre)^T for `update`."""
        model, hidden, backward = self.model, self.hidden, self.backward
        with torch.no_grad():
            torch.addmm(self.base, self.coefficients, self.kernel, out=hidden)  # the kernel is symmetric
            _phi_(hidden, model.leaky_slope)
            margin = torch.mv(hidden.t(), model.readout).mul_(self.y)
            loss = margin_loss(self.loss, margin).sum() / len(self.y)
            g = self.fixed if self.fixed is not None else self.slope(margin).mul_(self.y).div_(len(self.y))
            torch.mul(model.readout[:, None], g, out=backward)
            _phi_backward_(backward, hidden, model.leaky_slope)
        return loss

    def update(self) -> None:
        """One SGD step (torch.optim.SGD's momentum rule) on the coefficients, at the schedule's rate."""
        direction = self.backward
        if self.momentum != 0.0:
            if self.velocity is None:
                self.velocity = self.backward.clone()
            else:
                self.velocity.mul_(self.momentum).add_(self.backward)
            direction = self.velocity
        self.coefficients.add_(direction, alpha=-self.schedule.rate)

    def write_back(self) -> None:
        """Set the model's weight and bias to W_0 + C^T x and b_0 + C^T 1."""
        with torch.no_grad():
            torch.addmm(self.start, self.coefficients, self.x, out=self.model.weight)
            if self.model.bias is not None and self.start_bias is not None:
                torch.add(self.start_bias, self.coefficients.sum(dim=1), out=self.model.bias)


def in_kernel_form_pays(n: int, dim: int) -> bool:
    """Whether InKernelForm's step (one N x N x m product) has fewer multiply-adds than KERNEL_MARGIN
    times ByHand's (two N x d x m): N < 2 KERNEL_MARGIN d. It reads the shapes only, never the
    steps, so that a training of T steps alone and the snapshot at T of a longer one (step-prefix
    reuse) compute in the same form, bit for bit."""
    return n < 2 * KERNEL_MARGIN * dim


class Plateau:
    """torch.optim.lr_scheduler.ReduceLROnPlateau with PyTorch's defaults (mode min, factor 0.1,
    patience 10, relative threshold 1e-4, no cooldown, min_lr 0, eps 1e-8), decision for
    decision, on a plain rate: the by-hand training builds no torch optimizer, whose first
    construction in a process imports torch._dynamo (1.6 s here, in every job)."""

    FACTOR, PATIENCE, THRESHOLD, EPS = 0.1, 10, 1e-4, 1e-8

    def __init__(self, rate: float) -> None:
        self.rate, self.best, self.bad = rate, math.inf, 0

    def step(self, loss: float) -> None:
        if loss < self.best * (1.0 - self.THRESHOLD):
            self.best, self.bad = loss, 0
        else:
            self.bad += 1
        if self.bad > self.PATIENCE:
            lowered = max(self.rate * self.FACTOR, 0.0)
            if self.rate - lowered > self.EPS:
                self.rate = lowered
            self.bad = 0


class _Constant:
    """A fixed rate (the `constant` schedule)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def step(self, loss: float) -> None:
        pass


# The schedules of SCHEDULES on a plain rate, for the by-hand training.
HAND_SCHEDULES: dict[str, Callable[[float], Plateau | _Constant]] = {"plateau": Plateau, "constant": _Constant}


class _MomentumSGD:
    """torch.optim.SGD's step (momentum, no dampening, no weight decay), operation for operation,
    without torch.optim (see Plateau); its rate follows its schedule."""

    def __init__(self, params: list[torch.nn.Parameter], config: TrainingConfig) -> None:
        self.params: list[torch.Tensor] = list(params)
        self.momentum = config.momentum
        self.schedule = lookup(HAND_SCHEDULES, config.schedule, "schedule")(config.lr)
        self.buffers: list[torch.Tensor] = []

    def step(self) -> None:
        rate = self.schedule.rate
        with torch.no_grad():
            grads = [p.grad for p in self.params if p.grad is not None]
            if self.momentum != 0.0:
                if not self.buffers:
                    self.buffers = [torch.clone(g).detach() for g in grads]
                else:  # the same operations per tensor, in one call each
                    torch._foreach_mul_(self.buffers, self.momentum)
                    torch._foreach_add_(self.buffers, grads)
                grads = self.buffers
            torch._foreach_add_(self.params, grads, alpha=-rate)


def by_hand(arithmetic: Arithmetic, config: TrainingConfig) -> bool:
    """Whether a training computes its gradients by hand (ByHand or InKernelForm): pl-dsl's own
    arithmetic in fp32 with SGD (the authors' runs keep autograd, as their code; fp16 and bf16 keep autocast)."""
    return arithmetic.by_hand and config.precision == "fp32" and config.loss in LOSS_SLOPES \
        and config.optimizer == "sgd" and config.schedule in HAND_SCHEDULES


def train(model: TwoLayerNet, x: torch.Tensor, y: torch.Tensor, config: TrainingConfig,
          on_step: Callable[[int, int, float], None] | None = None, snapshots: Collection[int] = (),
          on_snapshot: Callable[[int, list[float]], None] | None = None,
          arithmetic: Arithmetic = OWN_ARITHMETIC) -> list[float]:
    """Full-batch training for config.steps steps; returns the loss curve. After each step,
    on_step(steps done, config.steps, loss) if given (progress reports), and after step t for
    every t in snapshots, on_snapshot(t, losses so far) while the model holds its state after t
    steps: with a causal schedule that is the network a training of t steps ends with.

    Raises Divergence with the step number as soon as the loss is not finite, unless the
    arithmetic goes on with it (the authors' code: the weights become NaN and stay so).
    """
    hand: ByHand | InKernelForm | None = None
    kernel: InKernelForm | None = None  # the same object as hand, when training in kernel form
    scheduler: Plateau | _Constant | torch.optim.lr_scheduler.ReduceLROnPlateau | None
    manual = by_hand(arithmetic, config)
    if manual and in_kernel_form_pays(len(x), x.shape[1]):
        hand = kernel = InKernelForm(model, x, y, config)
        optimizer_step, scheduler = kernel.update, kernel.schedule
    elif manual:  # no torch optimizer: SGD and its schedule by hand
        hand = ByHand(model, x, y, config.loss)
        stepper = _MomentumSGD([p for p in model.parameters() if p.requires_grad], config)
        optimizer_step, scheduler = stepper.step, stepper.schedule
    else:
        optimizer = lookup(OPTIMIZERS, config.optimizer, "optimizer")(
            [p for p in model.parameters() if p.requires_grad], config)
        make_scheduler = lookup(SCHEDULES, config.schedule, "schedule")
        optimizer_step, scheduler = optimizer.step, make_scheduler(optimizer) if make_scheduler is not None else None
    device_type = x.device.type
    scaler = torch.amp.GradScaler(device_type) if config.precision == "fp16" else None
    losses: list[float] = []
    for step in range(config.steps):
        if hand is not None:
            loss = hand.step()
        else:
            optimizer.zero_grad(set_to_none=True)
            with autocast(device_type, config.precision):
                loss = arithmetic.loss(config.loss, model(x).float(), y).mean()
        value = loss.item()
        if not math.isfinite(value) and arithmetic.stops_when_not_finite:
            if kernel is not None:
                kernel.write_back()
            raise Divergence(step, value)
        if hand is not None:
            optimizer_step()
        elif scaler is None:
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer_step()
        else:
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
        if scheduler is not None:
            scheduler.step(value)
        losses.append(value)
        if on_step is not None:
            on_step(step + 1, config.steps, value)
        if on_snapshot is not None and step + 1 in snapshots:
            if kernel is not None:
                kernel.write_back()
            on_snapshot(step + 1, losses)
    if kernel is not None:
        kernel.write_back()
    return losses


class _StackedSGD:
    """SGD with momentum (as torch.optim.SGD, no dampening) over B stacked nets, each with its
    own learning rate, stepped by its own copy of the run's schedule."""

    def __init__(self, configs: list[TrainingConfig]) -> None:
        self.momentum = configs[0].momentum
        make_scheduler = lookup(SCHEDULES, configs[0].schedule, "schedule")
        # One real scheduler per net, on a placeholder optimizer: the schedule's own logic decides.
        self.holders = [torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=c.lr) for c in configs]
        self.schedulers = [make_scheduler(h) if make_scheduler is not None else None for h in self.holders]
        self.buffers: list[torch.Tensor] = []

    def rates(self, keep: list[int], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.holders[i].param_groups[0]["lr"] for i in keep], dtype=like.dtype, device=like.device)

    def step(self, params: list[torch.Tensor], grads: list[torch.Tensor], keep: list[int]) -> None:
        rates = self.rates(keep, params[0])
        if not self.buffers:
            self.buffers = [g.clone() for g in grads]
        else:
            for buffer, grad in zip(self.buffers, grads):
                buffer.mul_(self.momentum).add_(grad)
        for param, buffer in zip(params, self.buffers):
            param.sub_(rates.view(-1, *[1] * (param.dim() - 1)) * buffer)

    def schedule(self, index: int, loss: float) -> None:
        scheduler = self.schedulers[index]
        if scheduler is not None:
            scheduler.step(loss)


def stacks(device: torch.device, configs: list[TrainingConfig], force: bool = False,
           arithmetic: Arithmetic = OWN_ARITHMETIC) -> bool:
    """Whether nets of one shape train as one stacked model: on CUDA, where one small net leaves
    the device idle, for two or more fp32 nets; on the CPU, per-net training was measured faster
    (benchmarks/stacked_nets.py), so only when forced (`--config stack=on`, and the tests)."""
    return arithmetic.stacks and (device.type == "cuda" or force) and len(configs) > 1 \
        and all(c.precision == "fp32" for c in configs)


def _stack_inputs(items: Sequence[torch.Tensor]) -> torch.Tensor:
    """One tensor for all nets when they share it (the same object), else the nets' stacked."""
    return items[0] if all(item is items[0] for item in items) else torch.stack(list(items))


def train_stacked(nets: list[TwoLayerNet], xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor],
                  configs: list[TrainingConfig], snapshots: list[Collection[int]],
                  on_snapshot: Callable[[int, int, TwoLayerNet, list[float]], None],
                  on_diverged: Callable[[int, Divergence], None],
                  on_step: Callable[[int, int, float], None] | None = None) -> None:
    """Train B nets of one shape as one stacked model (one batched matrix product per layer
    instead of B small ones): net i on (xs[i], ys[i]) with configs[i]. The nets may differ in
    initialisation, data (of one shape: nets sharing a tensor share it in memory), lr and steps;
    loss, optimizer, momentum and schedule are the same. After step t of net i with t in
    snapshots[i], on_snapshot(i, t, net i as a TwoLayerNet, its losses). A net whose loss is not
    finite is dropped: on_diverged(i, error). The same computation as `train` of each net alone,
    up to float rounding (fp32 only)."""
    first = nets[0]
    x, y = _stack_inputs(xs), _stack_inputs(ys)  # (N, d) shared or (B, N, d); (N,) or (B, N)
    weight = torch.stack([n.weight.detach() for n in nets]).clone()
    bias = torch.stack([n.bias.detach() for n in nets if n.bias is not None]).clone() if first.bias is not None else None
    readout = torch.stack([n.readout for n in nets])
    optimizer = _StackedSGD(configs)
    keep = list(range(len(nets)))  # nets still training, in stack order
    losses: list[list[float]] = [[] for _ in nets]
    horizon = max(c.steps for c in configs)
    for step in range(horizon):
        params = [weight.requires_grad_()] + ([bias.requires_grad_()] if bias is not None else [])
        pre = torch.matmul(x, weight.transpose(1, 2))
        if bias is not None:
            pre = pre + bias[:, None, :]
        out = torch.matmul(F.leaky_relu(pre, first.leaky_slope), readout[:, :, None]).squeeze(-1)
        loss = margin_loss(configs[0].loss, y * out).mean(dim=1)
        values = loss.tolist()
        finite = [math.isfinite(v) for v in values]
        grads = torch.autograd.grad(loss[torch.tensor(finite, device=loss.device)].sum(), params) \
            if any(finite) else [torch.zeros_like(p) for p in params]
        with torch.no_grad():
            optimizer.step([p.detach() for p in params], [g.detach() for g in grads], keep)
        weight, bias = weight.detach(), bias.detach() if bias is not None else None
        done = []
        for row, index in enumerate(keep):
            if not finite[row]:
                on_diverged(index, Divergence(step, values[row]))
                done.append(row)
                continue
            optimizer.schedule(index, values[row])
            losses[index].append(values[row])
            if step + 1 in snapshots[index]:
                net = copy.deepcopy(nets[index])
                with torch.no_grad():
                    net.weight.copy_(weight[row])
                    if net.bias is not None and bias is not None:
                        net.bias.copy_(bias[row])
                on_snapshot(index, step + 1, net, losses[index])
            if step + 1 >= configs[index].steps:
                done.append(row)
        if on_step is not None:
            on_step(step + 1, horizon, min((v for v, ok in zip(values, finite) if ok), default=math.nan))
        if done:  # drop finished and diverged nets from the stack (and their momentum)
            rows = [r for r in range(len(keep)) if r not in done]
            if not rows:
                return
            index_rows = torch.tensor(rows, device=weight.device)
            weight, readout = weight[index_rows], readout[index_rows]
            x = x[index_rows] if x.dim() == 3 else x
            y = y[index_rows] if y.dim() == 2 else y
            bias = bias[index_rows] if bias is not None else None
            optimizer.buffers = [b[index_rows] for b in optimizer.buffers]
            keep = [keep[r] for r in rows]


def outputs(model: TwoLayerNet, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Raw network outputs, computed in chunks without gradients."""
    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])


def input_gradient(model: TwoLayerNet, x: torch.Tensor, labels: torch.Tensor, loss: str,
                   arithmetic: Arithmetic = OWN_ARITHMETIC) -> torch.Tensor:
    """The gradient in x of the summed loss at (x, labels), the weights held fixed: what the
    attack's first step follows."""
    point = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(arithmetic.loss(loss, model(point), labels).sum(), point)
    return grad


def labels_of(values: torch.Tensor) -> torch.Tensor:
    """Signs as the authors score them (train.py `test`, `calc_agreement`): +1, -1, and 0 for an
    output of exactly 0, which is wrong against any label and agrees only with another 0; NaN for
    a NaN output, wrong against any label and agreeing with nothing (NaN != NaN)."""
    return torch.sign(values)


def predict(model: TwoLayerNet, x: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Predicted labels: the sign of the output (0 for an output of exactly 0, see labels_of)."""
    return labels_of(outputs(model, x, chunk))
