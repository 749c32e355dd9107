"""The stage mathematics: losses, attack constraints, target labels, divergence, determinism."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import pytest
import torch

from pl_dsl.engine.paths import Layout
from pl_dsl.engine.plan import Unit, run_units
from pl_dsl.engine.runner import UnitRunner, run_in_process
from pl_dsl.engine.store import read_json, read_record
from pl_dsl.errors import StageFailure
from pl_dsl.science.attack import draw_targets, perturb, perturbation_norm
from pl_dsl.science.data import make_dataset
from pl_dsl.science.nn import Divergence, TwoLayerNet, margin_loss, train
from pl_dsl.spec.check import check_text
from pl_dsl.spec.config import AttackConfig, DataConfig, TrainingConfig
from pl_dsl.stages import REGISTRY


def attack(eps: float, steps: int = 1, norm: str = "l2", k: int = 1) -> AttackConfig:
    return AttackConfig(norm=norm, eps=eps, l0_k=k, targets="random", steps=steps, step_size=2.5 / steps)


def training(loss: str, steps: int, lr: float, precision: str = "fp32") -> TrainingConfig:
    """Plain gradient descent (momentum 0, constant step)."""
    return TrainingConfig(loss=loss, steps=steps, lr=lr, optimizer="sgd", momentum=0.0, schedule="constant",
                          precision=precision)


def metrics(layout: Layout, unit: Unit) -> dict[str, object]:
    """The metrics a stored unit recorded."""
    record = read_json(layout.unit(unit.stage, unit.key) / "record.json")
    return dict(record["metrics"])


def net(dim: int = 12, width: int = 30, seed: int = 0, slope: float = 0.0) -> TwoLayerNet:
    return TwoLayerNet(dim, width, slope, "gaussian", True, torch.Generator().manual_seed(seed))


def test_losses_match_their_formulas_and_logistic_is_stable() -> None:
    s = torch.tensor([-3.0, 0.0, 2.0])
    assert torch.allclose(margin_loss("identity", s), -s)
    assert torch.allclose(margin_loss("logistic", s), torch.log1p(torch.exp(-s)))
    assert torch.allclose(margin_loss("exponential", s), torch.exp(-s))
    big = torch.tensor([-1000.0, 1000.0])
    assert torch.allclose(margin_loss("logistic", big), torch.tensor([1000.0, 0.0]))


def test_network_is_a_leaky_relu_sum_with_frozen_readout() -> None:
    model = net(slope=0.25)
    x = torch.randn(5, 12, generator=torch.Generator().manual_seed(1))
    pre = x @ model.weight.T + model.bias
    expected = torch.where(pre > 0, pre, 0.25 * pre) @ model.readout
    assert torch.allclose(model(x), expected, atol=1e-6)
    assert "readout" not in dict(model.named_parameters())


@pytest.mark.parametrize("loss", ["identity", "logistic", "exponential"])
@pytest.mark.parametrize("slope", [0.0, 0.5])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("block", [None, 100])
def test_gradients_by_hand_equal_autograd_and_so_does_training(loss: str, slope: float, bias: bool, block: int | None,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """pl-dsl's fp32 training computes its gradients by hand (nn.ByHand): at every step the loss
    and the gradients must be autograd's up to float rounding, and a training with momentum and
    the plateau schedule must end where autograd's does. Odd sizes, large margins (logistic and
    exponential far into their tails), and D worked through in blocks of 3 rows (block=100 hidden
    units, the last block shorter) included."""
    from pl_dsl.science import nn
    from pl_dsl.science.nn import OWN_ARITHMETIC, ByHand, own_loss

    if block is not None:
        monkeypatch.setattr(nn, "BLOCK_ELEMENTS", block)

    generator = torch.Generator().manual_seed(3)
    x = torch.randn(37, 13, generator=generator) * 4.0  # large inputs: margins of tens
    y = torch.where(torch.rand(37, generator=generator) < 0.5, -1.0, 1.0)
    net = TwoLayerNet(13, 29, slope, "gaussian", bias, generator)
    twin = TwoLayerNet(13, 29, slope, "gaussian", bias, torch.Generator())
    twin.load_state_dict(net.state_dict())
    hand = ByHand(net, x, y, loss)
    assert hand.rows == (3 if block else 37)
    for _ in range(3):  # at several points of a descent
        value = hand.step()
        reference = own_loss(loss, twin(x), y).mean()
        for parameter in twin.parameters():
            parameter.grad = None
        reference.backward()  # type: ignore[no-untyped-call]
        assert torch.allclose(value, reference, rtol=1e-6, atol=0.0)
        for ours, theirs in zip(net.parameters(), twin.parameters()):
            assert theirs.grad is not None and ours.grad is not None
            assert torch.allclose(ours.grad, theirs.grad, rtol=1e-5, atol=1e-6 * theirs.grad.abs().max().item())
        with torch.no_grad():
            for ours, theirs in zip(net.parameters(), twin.parameters()):
                ours.sub_(1e-3 * theirs.grad)
                theirs.sub_(1e-3 * theirs.grad)
    # whole trainings: by hand (pl-dsl's arithmetic) against autograd (the same with by_hand off)
    config = TrainingConfig(loss=loss, steps=40, lr=0.05, optimizer="sgd", momentum=0.9, schedule="plateau",
                            precision="fp32")
    start = TwoLayerNet(13, 29, slope, "gaussian", bias, torch.Generator().manual_seed(5))
    a, b = (TwoLayerNet(13, 29, slope, "gaussian", bias, torch.Generator()) for _ in range(2))
    a.load_state_dict(start.state_dict())
    b.load_state_dict(start.state_dict())
    for scale in (0.25, 1.0):  # moderate margins, then large ones (where exponential diverges)
        a.load_state_dict(start.state_dict())
        b.load_state_dict(start.state_dict())
        outcomes = []
        for net_, arithmetic in ((a, OWN_ARITHMETIC), (b, dataclasses.replace(OWN_ARITHMETIC, by_hand=False))):
            try:
                outcomes.append(train(net_, x * scale, y, config, arithmetic=arithmetic))
            except Divergence as error:
                outcomes.append(error.step)
        curve, autograd = outcomes
        if isinstance(autograd, int):  # diverged: at the same step
            assert curve == autograd
            continue
        assert curve == pytest.approx(autograd, rel=1e-4, abs=1e-6)
        for ours, theirs in zip(a.parameters(), b.parameters()):
            assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss", ["identity", "logistic", "exponential"])
@pytest.mark.parametrize("slope", [0.0, 0.5])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_training_in_kernel_form_ends_where_autograd_does(loss: str, slope: float, bias: bool, momentum: float) -> None:
    """With fewer samples than twice the dimension, pl-dsl's fp32 training moves the coefficients
    C of W = W_0 + C^T x (nn.InKernelForm): its loss curve, its snapshots and its final weights
    must be autograd's up to float rounding (odd sizes; margins of tens, where exponential
    diverges, at the same step), and a divergence leaves the weights of its step."""
    from pl_dsl.science.nn import OWN_ARITHMETIC, in_kernel_form_pays

    n, dim, width, steps = 23, 31, 17, 40
    assert in_kernel_form_pays(n, dim) and not in_kernel_form_pays(37, 13)
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(n, dim, generator=generator)
    y = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    config = TrainingConfig(loss=loss, steps=steps, lr=0.05, optimizer="sgd", momentum=momentum, schedule="plateau",
                            precision="fp32")
    start = TwoLayerNet(dim, width, slope, "gaussian", bias, torch.Generator().manual_seed(5))
    for scale in (0.25, 2.0, 6.0):  # moderate margins, then large ones (exponential diverges at 6)
        outcomes, snapshots, ends = [], [], []
        for arithmetic in (OWN_ARITHMETIC, dataclasses.replace(OWN_ARITHMETIC, by_hand=False)):
            model = TwoLayerNet(dim, width, slope, "gaussian", bias, torch.Generator())
            model.load_state_dict(start.state_dict())
            taken: dict[int, list[torch.Tensor]] = {}
            try:
                outcomes.append(train(model, x * scale, y, config, snapshots={1, 7, 20}, arithmetic=arithmetic,
                                      on_snapshot=lambda t, _, model=model, taken=taken: taken.__setitem__(
                                          t, [p.detach().clone() for p in model.parameters()])))
            except Divergence as error:
                outcomes.append(error.step)
            snapshots.append(taken)
            ends.append([p.detach().clone() for p in model.parameters()])
        curve, autograd = outcomes
        assert sorted(snapshots[0]) == sorted(snapshots[1])
        for t in snapshots[0]:
            for ours, theirs in zip(snapshots[0][t], snapshots[1][t]):
                assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5), t
        if isinstance(autograd, int):
            assert curve == autograd
        else:
            assert curve == pytest.approx(autograd, rel=1e-4, abs=1e-6)
        for ours, theirs in zip(*ends):  # after the last step, or at the diverging one
            assert torch.allclose(ours, theirs, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("schedule", ["plateau", "constant"])
def test_the_hand_optimizer_and_schedule_step_as_torch_bit_for_bit(momentum: float, schedule: str) -> None:
    """The by-hand training's SGD and schedule (nn._MomentumSGD, nn.Plateau) are torch.optim.SGD
    and ReduceLROnPlateau, decision for decision: the same rates after a run of losses that
    improves, stalls (patience), improves by less than the threshold, turns NaN, and the same
    weights, bit for bit."""
    from pl_dsl.science.nn import SCHEDULES, _MomentumSGD

    generator = torch.Generator().manual_seed(0)
    ours = [torch.nn.Parameter(torch.randn(7, 5, generator=generator)), torch.nn.Parameter(torch.randn(7, generator=generator))]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    config = TrainingConfig(loss="identity", steps=1, lr=0.3, optimizer="sgd", momentum=momentum, schedule=schedule,
                            precision="fp32")
    reference = torch.optim.SGD(theirs, lr=0.3, momentum=momentum)
    make = SCHEDULES[schedule]
    scheduler = make(reference) if make is not None else None
    stepper = _MomentumSGD(ours, config)
    losses = [5.0, 4.0] + [4.0] * 12 + [3.9999] * 12 + [3.0, math.nan] + [2.0] * 30 + [1.0]
    for loss in losses:
        grads = [torch.randn(p.shape, generator=generator) for p in ours]
        for p, q, grad in zip(ours, theirs, grads):
            p.grad, q.grad = grad.clone(), grad.clone()
        stepper.step()
        reference.step()
        stepper.schedule.step(loss)
        if scheduler is not None:
            scheduler.step(loss)
        assert stepper.schedule.rate == reference.param_groups[0]["lr"]
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q)
    assert stepper.schedule.rate < 0.3 if schedule == "plateau" else stepper.schedule.rate == 0.3  # it did lower


def test_attack_gradient_matches_finite_differences() -> None:
    """The L2 step points along -grad of the loss at the target (checked by finite differences)."""
    model = net().double()
    x = torch.randn(1, 12, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y_adv = torch.tensor([1.0], dtype=torch.float64)
    r = perturb(model, x, y_adv, "logistic", attack(1e-3))
    h = 1e-6
    grad = torch.zeros(12, dtype=torch.float64)
    for i in range(12):
        e = torch.zeros_like(x)
        e[0, i] = h
        up = margin_loss("logistic", y_adv * model(x + e)).sum()
        down = margin_loss("logistic", y_adv * model(x - e)).sum()
        grad[i] = (up - down) / (2 * h)
    expected = -1e-3 * grad / grad.norm()
    assert torch.allclose(r[0], expected, atol=1e-9)


@pytest.mark.parametrize("norm,steps", [("l2", 1), ("l2", 5), ("linf", 1), ("linf", 5), ("l0", 1), ("l0", 4)])
def test_every_norm_respects_its_constraint(norm: str, steps: int) -> None:
    model = net()
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(3))
    y_adv = draw_targets("random", torch.ones(64), torch.Generator().manual_seed(4))
    eps, k = 0.3, 3
    r = perturb(model, x, y_adv, "identity", attack(eps, steps, norm, k))
    size = perturbation_norm(r, norm)
    if norm == "l2":
        assert (size <= eps * (1 + 1e-5)).all()
        if steps == 1:
            assert torch.allclose(size, torch.full_like(size, eps), rtol=1e-5)
    elif norm == "linf":
        assert (r.abs() <= eps + 1e-7).all()
        if steps == 1:
            assert torch.allclose(size, torch.full_like(size, eps))
    else:
        assert (size <= k).all() and (r.abs() <= eps + 1e-7).all()
        if steps == 1:
            assert (size == k).all()


def test_attack_moves_f_towards_the_targets() -> None:
    model = net()
    x = torch.randn(200, 12, generator=torch.Generator().manual_seed(5))
    y_adv = draw_targets("balanced", torch.ones(200), torch.Generator().manual_seed(6))
    r = perturb(model, x, y_adv, "identity", attack(0.5))
    with torch.no_grad():
        gain = y_adv * (model(x + r) - model(x))
    assert (gain > 0).float().mean() > 0.95


def test_target_modes() -> None:
    y = torch.tensor([1.0, -1.0] * 50 + [1.0])
    gen = torch.Generator().manual_seed(0)
    balanced = draw_targets("balanced", y, gen)
    assert balanced.sum().item() == 1.0 and set(balanced.tolist()) == {1.0, -1.0}
    assert torch.equal(draw_targets("flip", y, gen), -y)
    random = draw_targets("random", torch.ones(4000), gen)
    assert abs(random.mean().item()) < 0.1


def test_divergence_names_the_step() -> None:
    model = net()
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(7)) * 10
    y = torch.ones(32)
    with pytest.raises(Divergence) as info:
        train(model, x, y, training("exponential", 200, 1e6))
    assert 0 < info.value.step < 200 and not math.isfinite(info.value.value)


def test_synthetic_data_follow_the_spec() -> None:
    config = DataConfig(kind="shifted_gauss", dim=50, n_train=2000, n_test=10, mean_shift=0.3)
    data = make_dataset(config, 0)
    assert data.x.shape == (2000, 50) and data.x_test.shape == (10, 50)
    assert data.y[:1000].eq(1).all() and data.y[1000:].eq(-1).all()
    assert data.x[:1000].mean().item() == pytest.approx(0.3, abs=0.02)
    assert data.x[1000:].mean().item() == pytest.approx(-0.3, abs=0.02)
    again = make_dataset(config, 0)
    assert torch.equal(data.x, again.x)


SPEC = """
name: order
data: {kind: shifted_gauss, dim: 8, n_train: 30, n_test: 20}
network: {width: 16}
training: {steps: 20, lr: 0.5}
attack: {targets: balanced, eps: 0.1}
seeds: [0, 1]
sweep:
  grid:
    train_g.lr: [0.5, 0.1]
"""


def test_results_do_not_depend_on_the_order_units_run_in(tmp_path: Path) -> None:
    experiment, errors = check_text(SPEC, "order.yaml")
    assert not errors
    units = [run_units(r, REGISTRY) for r in experiment.runs]
    forward, backward = Layout(tmp_path / "fwd"), Layout(tmp_path / "bwd")
    torch.manual_seed(123)
    run_in_process(units, forward, REGISTRY)
    torch.manual_seed(999)
    torch.randn(100)  # disturb the global stream: stages must not use it
    run_in_process(list(reversed(units)), backward, REGISTRY)
    for run_units_ in units:
        for unit in run_units_.values():
            assert metrics(forward, unit) == metrics(backward, unit)
        assert metrics(forward, run_units_["evaluate"])["g_clean_acc"] is not None


def test_divergence_is_stored_as_the_runs_result(tmp_path: Path) -> None:
    experiment, errors = check_text("""
name: boom
data: {kind: shifted_gauss, dim: 8, n_train: 30, n_test: 20}
training: {steps: 500, lr: 100000.0, loss: exponential, momentum: 0.0, schedule: constant}
""", "boom.yaml")
    assert not errors
    units = run_units(experiment.runs[0], REGISTRY)
    workspace = UnitRunner(Layout(tmp_path), REGISTRY)
    assert workspace.compute(units["train_f"]) and workspace.compute(units["attack"])
    assert not list(tmp_path.rglob("*.pt"))  # nothing is computed from a diverged f
    f_record = read_record(Layout(tmp_path).unit("train_f", units["train_f"].key))
    attack_record = read_record(Layout(tmp_path).unit("attack", units["attack"].key))
    assert f_record["status"] == attack_record["status"] == "diverged"
    assert re.fullmatch(r"train_f diverged at step \d+ \(loss = (inf|nan)\)", f_record["note"])
    assert attack_record["note"] == f_record["note"]
    assert [unit.stage for unit, _ in workspace.diverged] == ["train_f"]
    assert not workspace.compute(units["train_f"])  # stored: a rerun does not retry it


def test_an_attack_on_huge_gradients_gives_full_size_perturbations_or_diverges() -> None:
    net = TwoLayerNet(5, 4, 0.0, "gaussian", True, torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.weight.mul_(1e35)  # gradients near float32's limit: their L2 norm overflows
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    y_adv = torch.tensor([1.0, -1.0] * 3)
    config = AttackConfig(norm="l2", eps=0.5, l0_k=1, targets="iid", steps=1, step_size=1.0)
    try:
        delta = perturb(net, x, y_adv, "identity", config)
    except Divergence as exc:
        assert exc.reason
        return
    norms = delta.norm(dim=1)
    assert torch.isfinite(norms).all() and torch.allclose(norms[norms > 0], torch.tensor(0.5))
    assert (norms > 0).any()


@pytest.mark.cuda
def test_cuda_and_cpu_agree_on_a_tiny_run(tmp_path: Path) -> None:
    experiment, _ = check_text(SPEC.replace("seeds: [0, 1]", "seeds: [0]"), "order.yaml")
    cpu_units = run_units(experiment.runs[0], REGISTRY)
    for unit in cpu_units.values():
        unit.device = "cpu"
    run_in_process([cpu_units], Layout(tmp_path / "cpu"), REGISTRY)
    gpu_units = run_units(experiment.runs[0], REGISTRY)
    for unit in gpu_units.values():
        unit.device = "cuda"
    run_in_process([gpu_units], Layout(tmp_path / "gpu"), REGISTRY)
    unit = cpu_units["evaluate"]
    gpu_record = read_json(Layout(tmp_path / "gpu").unit(unit.stage, unit.key) / "record.json")
    assert gpu_record["device"].startswith("cuda")
    cpu, gpu = metrics(Layout(tmp_path / "cpu"), unit), gpu_record["metrics"]
    assert abs(float(cpu["g_clean_acc"]) - gpu["g_clean_acc"]) < 0.05


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_trains_on_the_cpu(precision: str) -> None:
    model = net()
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(8))
    y = torch.where(x[:, 0] > 0, 1.0, -1.0)
    losses = train(model, x, y, training("logistic", 60, 0.5, precision))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_precision_trains_on_cuda(precision: str) -> None:
    model = net().cuda()
    x = torch.randn(256, 12, generator=torch.Generator().manual_seed(8)).cuda()
    y = torch.where(x[:, 0] > 0, 1.0, -1.0)
    losses = train(model, x, y, training("logistic", 60, 0.5, precision))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when CUDA is missing")
def test_forcing_cuda_without_cuda_names_the_run(tmp_path: Path) -> None:
    experiment, errors = check_text("name: c\ndevice: cuda\ndata: {kind: shifted_gauss, dim: 4, n_train: 10, n_test: 10}\n",
                                    "c.yaml")
    assert not errors
    units = run_units(experiment.runs[0], REGISTRY)
    with pytest.raises(StageFailure, match=rf"run {experiment.runs[0].id}: device 'cuda' was requested"):
        UnitRunner(Layout(tmp_path), REGISTRY).compute(units["train_f"])


def test_a_declared_constant_slope_is_the_losss_slope_at_every_margin() -> None:
    """ByHand computes g once for these losses: their derivative must not depend on the margin."""
    from pl_dsl.science.nn import CONSTANT_SLOPES, LOSS_SLOPES

    margins = torch.tensor([-100.0, -1.0, 0.0, 0.5, 30.0, 100.0])
    assert CONSTANT_SLOPES
    for name, slope in CONSTANT_SLOPES.items():
        assert torch.equal(LOSS_SLOPES[name](margins), torch.full_like(margins, slope)), name
