"""robustness: f's and g's accuracy on clean test points under an attack of the stage's own
settings, and g's accuracy on the adversarial test points crafted against f (does g inherit
f's non-robust features?). Off unless the spec enables it or asks for one of its metrics."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.spec.config import AttackConfig
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import BaseParams, absolute_eps, accuracy, eps_given_twice, run_dataset, working_bytes


@dataclass(frozen=True)
class RobustnessConfig:
    """The evaluation attack (eps made absolute)."""

    enabled: bool
    norm: str
    eps: float
    l0_k: int
    steps: int
    step_size: float  # relative to eps


@dataclass(frozen=True)
class RobustnessParams(BaseParams):
    robustness: RobustnessConfig


def compute(ctx: UnitContext, params: RobustnessParams) -> Output:
    from pl_dsl.science.attack import perturb
    from pl_dsl.science.nn import predict

    data = run_dataset(ctx, params)
    dim = data.x.shape[1]
    f, g = ctx.network("f", params.network, dim), ctx.network("g", params.network, dim)
    setting = params.robustness
    # Each test point is pushed towards the wrong label, -y. Every step is normalised per point,
    # so any decreasing loss of the margin y * net(x) gives the same perturbation; the margin
    # itself (the identity loss) never underflows.
    attack = AttackConfig(setting.norm, setting.eps, setting.l0_k, "flip", setting.steps, setting.step_size)
    x, y = data.x_test, data.y_test
    against_f, against_g = perturb(f, x, -y, "identity", attack), perturb(g, x, -y, "identity", attack)
    return Output({}, {
        "f_robust_acc": accuracy(predict(f, x + against_f), y),
        "g_robust_acc": accuracy(predict(g, x + against_g), y),
        "g_on_f_adv_acc": accuracy(predict(g, x + against_f), y),
    })


def cost(params: RobustnessParams) -> float:
    """Two attacks of `steps` forward-and-backward passes over the test set, three evaluations."""
    n_test = params.sizes()[1]
    return (6.0 * params.robustness.steps + 3.0) * n_test * params.per_sample()


SECTION = Section("robustness", RobustnessConfig, schema_beside(__file__), resolve=absolute_eps("robustness"),
                  columns=lambda setting: {"robust_eps": setting.eps}, problems=eps_given_twice)

STAGE = Stage(
    name="robustness", params=RobustnessParams, compute=compute, cost=cost,
    inputs={"f": "train_f", "g": "train_g"}, writes={},
    memory=lambda params: working_bytes(params, 3),  # test points, their perturbation and its gradient
    metrics={
        "f_robust_acc": "accuracy of f on clean test points attacked against f (robustness.* settings)",
        "g_robust_acc": "accuracy of g on clean test points attacked against g",
        "g_on_f_adv_acc": "accuracy of g on the test points attacked against f: low if g inherits f's "
                          "non-robust features",
    },
    switch="robustness.enabled", batch_size=64, sections=(SECTION,),
    test_label_metrics=("f_robust_acc", "g_robust_acc", "g_on_f_adv_acc"),
)
