"""`rng: reference` against the authors' own code: their train.py (../shared/reference/
perturbation-learning, its CPU fp32 port) run in their own environment (.ci/authors_env.sh) and
pl-dsl run as a user runs it, on small configurations of every synthetic kind, both scenarios and
both losses. Their initial weights, data, targets and test samples equal ours bit for bit; f's
accuracy, g's accuracy on clean D and the agreement equal ours to 1e-6."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from authors_train import AUTHORS_ENV, AUTHORS_PYTHON, REFERENCE, run_theirs

from conftest import run_cli

DIM, N, WIDTH, SLOPE, LR_F, LR_G, STEPS_F, STEPS_G, EPS = 20, 200, 50, 0.5, 0.5, 1.0, 30, 40, 0.1
# (data kind, scenario, loss, seed): every kind, both scenarios, both losses
CONFIGS = [("gauss", "a", "identity", 0), ("gauss", "b", "logistic", 1),
           ("shifted_gauss", "a", "logistic", 2), ("shifted_gauss", "b", "identity", 3)]


def require_authors() -> None:
    if AUTHORS_PYTHON.exists() and REFERENCE.exists():
        return
    message = f"the authors' environment is not at {AUTHORS_ENV} (bash .ci/authors_env.sh builds it)"
    if os.environ.get("PL_DSL_REQUIRE_AUTHORS"):
        pytest.fail(message)
    pytest.skip(message)


def spec(kind: str) -> str:
    runs = [c for c in CONFIGS if c[0] == kind]
    return f"""name: reference-{kind}
rng: reference
device: cpu
data: {{kind: {kind}, dim: {DIM}, n_train: {N}, n_test: 1000}}
network: {{width: {WIDTH}, leaky_slope: {SLOPE}}}
training: {{steps: {STEPS_F}, lr: {LR_F}, optimizer: sgd, momentum: 0.9, schedule: plateau}}
train_g: {{steps: {STEPS_G}, lr: {LR_G}}}
attack: {{norm: l2, eps: {EPS}, targets: random}}
sweep:
  zip:
    scenario: {json.dumps([c[1] for c in runs])}
    training.loss: {json.dumps([c[2] for c in runs])}
    seed: {json.dumps([c[3] for c in runs])}
"""


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str, int], dict]:
    require_authors()
    folder = tmp_path_factory.mktemp("authors")
    return {(kind, scenario, loss, seed): run_theirs({
        "hidden_dim": WIDTH, "slope": SLOPE, "loss_name": loss, "lr_1": LR_F, "lr_2": LR_G, "epochs_1": STEPS_F,
        "epochs_2": STEPS_G, "perturbation_size": EPS, "seed": seed, "on_original": scenario == "b",
        "in_dim": DIM, "data_gen_method": kind, "n_sample": N}, folder) for kind, scenario, loss, seed in CONFIGS}


def test_the_draws_are_theirs_bit_for_bit(theirs: dict) -> None:
    from pl_dsl.science.reference import draws
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    for (kind, _, _, seed), run in theirs.items():
        data = DataConfig(kind, DIM, N, 1000, 0.3 if kind == "shifted_gauss" else None)
        ours = draws(seed, data, NetworkConfig(WIDTH, SLOPE, "gaussian", True), torch.device("cpu"), until="test")
        (train_x, train_y), (test_x, _) = run["drawn"]["data"]
        f_init, g_init = run["drawn"]["nets"]
        for net, their in ((ours.f, f_init), (ours.g, g_init)):
            assert torch.equal(net.weight, their["linear.weight"]) and torch.equal(net.bias, their["linear.bias"])
            assert torch.equal(net.readout, their["readout"].flatten())
        assert torch.equal(ours.x, train_x) and torch.equal(ours.y, train_y.float())
        assert torch.equal(ours.targets, run["drawn"]["targets"][0].float())
        assert torch.equal(ours.x_test, test_x)


def test_a_reference_run_gives_their_accuracies(theirs: dict, tmp_path: Path) -> None:
    for kind in ("gauss", "shifted_gauss"):
        (tmp_path / f"{kind}.yaml").write_text(spec(kind))
        done = run_cli("run", str(tmp_path / f"{kind}.yaml"), "--cores", "2", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    compared = 0
    for metrics_file in (tmp_path / "results").glob("reference-*/runs/*/metrics.json"):
        record = json.loads(metrics_file.read_text())
        config = record["spec"]
        key = (config["data"]["kind"], config["scenario"], config["train_f"]["loss"], config["seed"])
        their = theirs[key]["metrics"]
        ours = record["metrics"]
        assert ours["f_train_acc"] == pytest.approx(their["acc"], abs=1e-6), key
        assert ours["g_clean_acc"] == pytest.approx(their["adv_acc_for_natural"], abs=1e-6), key
        assert ours["agreement"] == pytest.approx(their["agreement"], abs=1e-6), key
        compared += 1
    assert compared == len(CONFIGS)


def test_reference_mode_refuses_what_their_script_does_not_do(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(spec("gauss").replace("targets: random", "targets: balanced")
                                     .replace("n_test: 1000", "n_test: 500"))
    done = run_cli("validate", str(tmp_path / "s.yaml"))
    assert done.returncode == 1
    assert "attack.targets: rng: reference replays the authors' train.py, which has attack.targets = random" \
        in done.stderr
    assert "data.n_test: rng: reference" in done.stderr and ":4:" in done.stderr  # at the data line


def test_replaying_leaves_the_process_generators_alone() -> None:
    from pl_dsl.science.reference import draws
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    data, network = DataConfig("shifted_gauss", DIM, N, 1000, 0.3), NetworkConfig(WIDTH, SLOPE, "gaussian", True)
    torch.manual_seed(12345)
    before = torch.get_rng_state()
    first = draws(7, data, network, torch.device("cpu"), until="test")
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(1000)  # whatever ran before in the process
    again = draws(7, data, network, torch.device("cpu"), until="targets")
    assert torch.equal(first.x, again.x) and torch.equal(first.targets, again.targets) and again.g is None
    assert not torch.equal(first.x, draws(8, data, network, torch.device("cpu"), until="data").x)
