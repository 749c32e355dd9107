"""An output of exactly 0 is scored as the authors score it (train.py `test`: (f(x) * y) > 0, so
0 is wrong; `calc_agreement`: sign() == sign() with sign(0) = 0, so two zeros agree and a zero
never agrees with +-1), in every stage that scores signs: evaluate, robustness, the decision
map's fractions and the theory's condition (c)."""

from __future__ import annotations

from typing import Any

import torch

from pl_dsl.science.data import Dataset
from pl_dsl.science.nn import TwoLayerNet
from pl_dsl.science.theory import conditions
from pl_dsl.spec.config import DataConfig, NetworkConfig
from pl_dsl.stages import evaluate, robustness
from pl_dsl.stages.common import TrainedParams
from pl_dsl.stages.decision_map import map_metrics

DIM, WIDTH, N = 6, 8, 16
NETWORK = NetworkConfig(WIDTH, 0.0, "gaussian", True)
DATA = DataConfig("shifted_gauss", DIM, N, N, 0.5)


def network(zero: bool) -> TwoLayerNet:
    """A network whose every output is exactly 0 (zero readout), or one with outputs of both signs."""
    net = TwoLayerNet(DIM, WIDTH, 0.0, "gaussian", True, torch.Generator().manual_seed(3))
    if zero:
        net.readout.zero_()
    return net


class Context:
    """A unit context with a fixed data set, f and g (by input name), and g's training set."""

    device = torch.device("cpu")

    def __init__(self, f: TwoLayerNet, g: TwoLayerNet) -> None:
        generator = torch.Generator().manual_seed(0)
        y = torch.cat([torch.ones(N // 2), -torch.ones(N // 2)])
        self.data = Dataset(torch.randn(N, DIM, generator=generator), y, torch.randn(N, DIM, generator=generator), y)
        self.nets = {"f": f, "g": g}

    def dataset(self, data: DataConfig, seed: int) -> Dataset:
        return self.data

    def network(self, input_name: str, network: NetworkConfig, dim: int) -> TwoLayerNet:
        return self.nets[input_name]

    def load(self, input_name: str, file: str) -> Any:
        return {"delta": torch.zeros(N, DIM), "y_adv": self.data.y.clone()}


def test_evaluate_scores_a_zero_output_as_wrong_and_two_zeros_as_agreeing() -> None:
    both_zero = evaluate.compute(Context(network(True), network(True)), TrainedParams(0, DATA, NETWORK, "a")).metrics
    assert both_zero["f_train_acc"] == 0.0  # pl-dsl counted 0 as +1 before: 0.5 here
    assert both_zero["g_clean_acc"] == 0.0
    assert both_zero["g_adv_train_acc"] == 0.0
    assert both_zero["f_test_acc"] == 0.0
    assert both_zero["agreement"] == 1.0  # sign(0) == sign(0)
    one_zero = evaluate.compute(Context(network(True), network(False)), TrainedParams(0, DATA, NETWORK, "a")).metrics
    assert one_zero["agreement"] == 0.0  # sign(0) is neither +1 nor -1
    assert one_zero["f_train_acc"] == 0.0 and one_zero["g_clean_acc"] > 0.0


def test_robustness_scores_a_zero_output_as_wrong() -> None:
    params = robustness.RobustnessParams(0, DATA, NETWORK, robustness.RobustnessConfig(True, "l2", 0.0, 1, 1, 2.5))
    metrics = robustness.compute(Context(network(True), network(True)), params).metrics
    assert metrics == {"f_robust_acc": 0.0, "g_robust_acc": 0.0, "g_on_f_adv_acc": 0.0}


def test_decision_map_fractions_count_zeros_as_the_authors_map_does() -> None:
    zero, positive = torch.zeros(4, 4), torch.ones(4, 4)
    every = torch.ones(4, 4, dtype=torch.bool)
    same = map_metrics({"f": zero, "g": zero, "fhat": zero, "ghat": zero}, every)
    assert same["map_agree"] == 1.0 and same["map_agree_cond_all"] == 1.0
    apart = map_metrics({"f": zero, "g": positive, "fhat": positive, "ghat": positive}, every)
    assert apart["map_agree"] == 0.0  # map.py: classifier_f(m).sign() == classifier_g(m).sign()
    assert apart["map_fhat_agrees_f"] == 0.0 and apart["map_ghat_agrees_g"] == 1.0


def test_condition_c_compares_signs_with_sign_zero_its_own() -> None:
    fh = torch.tensor([0.0, 0.0, 1.0, -1.0])
    gh = torch.tensor([0.0, 1.0, 1.0, 1.0])
    _, _, cond_c = conditions(fh, gh, 0.0, 0.0, (1.0, 1.0))
    assert cond_c.tolist() == [True, False, True, False]
