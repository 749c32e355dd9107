"""evaluate: f and g on clean data, g on its own training set, and how often f and g agree."""

from __future__ import annotations

from pl_dsl.engine.registry import Output, Stage, UnitContext
from pl_dsl.stages.common import TRAINED_INPUTS, TrainedParams, accuracy, load_trained, working_bytes


def compute(ctx: UnitContext, params: TrainedParams) -> Output:
    from pl_dsl.science.nn import predict

    data, f, g, attack, x_adv = load_trained(ctx, params)
    f_test, g_test = predict(f, data.x_test), predict(g, data.x_test)
    return Output({}, {
        "f_train_acc": accuracy(predict(f, data.x), data.y),
        "f_test_acc": accuracy(f_test, data.y_test),
        "g_clean_acc": accuracy(predict(g, data.x), data.y),
        "g_adv_train_acc": accuracy(predict(g, x_adv), attack["y_adv"].to(ctx.device)),
        "g_test_acc": accuracy(g_test, data.y_test),
        "agreement": accuracy(f_test, g_test),
    })


def cost(params: TrainedParams) -> float:
    n_train, n_test = params.sizes()
    return 4.0 * (n_train + n_test) * params.per_sample()


STAGE = Stage(
    name="evaluate", params=TrainedParams, compute=compute, cost=cost, inputs=TRAINED_INPUTS, writes={},
    memory=lambda params: working_bytes(params, 3),
    metrics={
        "f_train_acc": "accuracy of f on its training set D",
        "f_test_acc": "accuracy of f on the clean test set",
        "g_clean_acc": "accuracy of g on clean D with the true labels (the paper's headline)",
        "g_adv_train_acc": "accuracy of g on its own training set (x_adv, y_adv)",
        "g_test_acc": "accuracy of g on the clean test set",
        "agreement": "fraction of test points where sign f = sign g",
    },
    batch_size=64, test_label_metrics=("f_test_acc", "g_test_acc"),
)
