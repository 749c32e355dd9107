"""theory: the lazy-regime predictions of Theorems 3.3-3.5 for one run: how well each
perturbation follows its kernel-weighted direction, how well f-hat and g-hat describe f and g,
and how often the prediction-matching conditions hold on test points."""

from __future__ import annotations

from dataclasses import dataclass

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.science import KERNEL_BLOCK_BYTES
from pl_dsl.spec.config import TheoryConfig
from pl_dsl.spec.sections import Section, schema_beside
from pl_dsl.stages.common import TRAINED_INPUTS, TrainedParams, accuracy, load_trained, working_bytes


@dataclass(frozen=True)
class TheoryParams(TrainedParams):
    theory: TheoryConfig


def compute(ctx: UnitContext, params: TheoryParams) -> Output:
    from pl_dsl.errors import lookup
    from pl_dsl.science.nn import labels_of, predict
    from pl_dsl.science.theory import MARGIN_SCALES, conditions, cosine, direction, f_hat, g_hat, random_abs_cosine

    data, f, g, attack, x_adv = load_trained(ctx, params)
    gamma = params.network.leaky_slope
    w = direction(data.x, data.y, gamma)
    delta, y_adv = attack["delta"].to(ctx.device), attack["y_adv"].to(ctx.device)
    fh, gh = f_hat(data.x, data.y, data.x_test, gamma), g_hat(x_adv, w, data.x_test, gamma)
    f_sign, g_sign = predict(f, data.x_test), predict(g, data.x_test)
    scales = lookup(MARGIN_SCALES, params.theory.margins, "margins")(data.x, data.y, x_adv, w, gamma)
    cond_a, cond_b, cond_c = conditions(fh, gh, params.theory.margin_f, params.theory.margin_g, scales)
    every = cond_a & cond_b & cond_c
    return Output({}, {
        "cos_abs_mean": cosine(delta, w).abs().mean().item(),
        "cos_signed_mean": cosine(delta, y_adv[:, None] * w).mean().item(),
        "cos_random": random_abs_cosine(data.x.shape[1]),
        "fhat_agrees_f": accuracy(labels_of(fh), f_sign),
        "ghat_agrees_g": accuracy(labels_of(gh), g_sign),
        "cond_a": cond_a.float().mean().item(), "cond_b": cond_b.float().mean().item(),
        "cond_c": cond_c.float().mean().item(), "cond_all": every.float().mean().item(),
        "agreement_cond_all": accuracy(f_sign[every], g_sign[every]) if every.any() else None,
    })


def cost(params: TheoryParams) -> float:
    n_train, n_test = params.sizes()
    return 4.0 * (2 * n_train + 2 * n_test) * n_train * params.data.dim  # direction and g-hat on D, test points


STAGE = Stage(
    name="theory", params=TheoryParams, compute=compute, cost=cost, inputs=TRAINED_INPUTS, writes={},
    memory=lambda params: working_bytes(params, 3) + KERNEL_BLOCK_BYTES,  # kernels come in chunks of that size
    switch="theory.enabled",
    metrics={
        "cos_abs_mean": "mean |cos| between r_n and sum_k Phi(x_n, x_k) y_k x_k (Thm 3.3)",
        "cos_signed_mean": "mean cos between r_n and y_adv_n * sum_k Phi(x_n, x_k) y_k x_k",
        "cos_random": "expected |cos| of a random direction in d dimensions, for scale",
        "fhat_agrees_f": "fraction of test points where sign f-hat = sign f",
        "ghat_agrees_g": "fraction of test points where sign g-hat = sign g",
        "cond_a": "fraction of test points with |f-hat| > margin_f (condition (a))",
        "cond_b": "fraction of test points with |g-hat| > margin_g (condition (b))",
        "cond_c": "fraction of test points with sign f-hat = sign g-hat",
        "cond_all": "fraction of test points where conditions (a), (b) and (c) all hold",
        "agreement_cond_all": "f-g agreement on the test points where all conditions hold (empty if none)",
    },
    batch_size=16, sections=(Section("theory", TheoryConfig, schema_beside(__file__)),),
)
