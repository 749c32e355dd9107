"""`rng: reference` against the authors' own code: their train.py (../shared/reference/
perturbation-learning, its CPU fp32 port) run in their own environment (.ci/authors_env.sh) and
pl-dsl run as a user runs it, on small configurations of every synthetic kind, both scenarios and
both losses, and of MNIST (a) and Fashion-MNIST (b) at small T and m (their loader reading the files
pl-dsl reads). Their initial weights, data, targets and test samples equal ours bit for bit; f's
accuracy, g's accuracy on clean D and the agreement equal ours to 1e-6."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from authors_train import (
    AUTHORS_ENV,
    AUTHORS_PYTHON,
    REFERENCE,
    THEIR_DATASETS,
    run_their_map,
    run_theirs_all,
    their_dataset_root,
)

from conftest import run_cli

DIM, N, WIDTH, SLOPE, LR_F, LR_G, STEPS_F, STEPS_G, EPS = 20, 200, 50, 0.5, 0.5, 1.0, 30, 40, 0.1
# (data kind, scenario, loss, seed): every kind, both scenarios, both losses
CONFIGS = [("gauss", "a", "identity", 0), ("gauss", "b", "logistic", 1),
           ("shifted_gauss", "a", "logistic", 2), ("shifted_gauss", "b", "identity", 3)]
# Real data as in their figures (MNIST 1 vs 2 in (a), Fashion-MNIST 0 vs 9 in (b); eps 0.14, lr 0.01),
# every sample of the two classes, at small T and m.
REAL_WIDTH, REAL_LR, REAL_STEPS, REAL_EPS = 50, 0.01, 20, 0.14
REAL_CONFIGS = [("mnist", "a", "identity", 4), ("fmnist", "b", "logistic", 5)]


def require_authors() -> None:
    if AUTHORS_PYTHON.exists() and REFERENCE.exists():
        return
    message = f"the authors' environment is not at {AUTHORS_ENV} (bash .ci/authors_env.sh builds it)"
    if os.environ.get("PL_DSL_REQUIRE_AUTHORS"):
        pytest.fail(message)
    pytest.skip(message)


def spec(kind: str) -> str:
    if kind in THEIR_DATASETS:
        return real_spec(kind)
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


def real_spec(kind: str) -> str:
    _, scenario, loss, seed = next(c for c in REAL_CONFIGS if c[0] == kind)
    return f"""name: reference-{kind}
rng: reference
device: cpu
data: {{kind: {kind}}}
network: {{width: {REAL_WIDTH}, leaky_slope: {SLOPE}}}
training: {{loss: {loss}, steps: {REAL_STEPS}, lr: {REAL_LR}, optimizer: sgd, momentum: 0.9, schedule: plateau}}
attack: {{norm: l2, eps: {REAL_EPS}, targets: random}}
scenario: {scenario}
seeds: [{seed}]
"""


def require_real_data() -> None:
    from pl_dsl.science.datasets import DataNotFound, locate

    try:
        for kind in THEIR_DATASETS:
            locate(kind, None)
    except DataNotFound as missing:
        if os.environ.get("PL_DSL_REQUIRE_REAL_DATA") == "1":
            raise
        pytest.skip(str(missing))


@pytest.fixture(scope="module")
def theirs(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str, int], dict]:
    require_authors()
    folder = tmp_path_factory.mktemp("authors")
    return dict(zip(CONFIGS, run_theirs_all([{
        "hidden_dim": WIDTH, "slope": SLOPE, "loss_name": loss, "lr_1": LR_F, "lr_2": LR_G, "epochs_1": STEPS_F,
        "epochs_2": STEPS_G, "perturbation_size": EPS, "seed": seed, "on_original": scenario == "b",
        "in_dim": DIM, "data_gen_method": kind, "n_sample": N, "for_map": True}
        for kind, scenario, loss, seed in CONFIGS], folder), strict=True))


MAP_RESOLUTION, MAP_LIMITS = 30, (-2.0, 3.0)


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pl-dsl run` of the synthetic configurations in reference mode, with decision maps."""
    folder = tmp_path_factory.mktemp("ours")
    low, high = MAP_LIMITS
    maps = f"decision_map: {{enabled: true, resolution: {MAP_RESOLUTION}, limits: [{low}, {high}, {low}, {high}]}}\n"
    for kind in ("gauss", "shifted_gauss"):
        (folder / f"{kind}.yaml").write_text(spec(kind).replace("sweep:", f"{maps}sweep:"))
    done = run_cli("run", str(folder / "gauss.yaml"), str(folder / "shifted_gauss.yaml"), "--cores", "2", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def theirs_real(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str, str, int], dict]:
    """Their runs on real data, their loader reading the files pl-dsl finds here."""
    require_authors()
    require_real_data()
    folder = tmp_path_factory.mktemp("authors-real")
    return dict(zip(REAL_CONFIGS, run_theirs_all([{
        "hidden_dim": REAL_WIDTH, "slope": SLOPE, "loss_name": loss, "lr_1": REAL_LR, "lr_2": REAL_LR,
        "epochs_1": REAL_STEPS, "epochs_2": REAL_STEPS, "perturbation_size": REAL_EPS, "seed": seed,
        "on_original": scenario == "b", "dataset_name": THEIR_DATASETS[kind],
        "dataset_root": str(their_dataset_root(kind, folder / kind))}
        for kind, scenario, loss, seed in REAL_CONFIGS], folder), strict=True))


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


def test_real_data_draws_are_theirs_bit_for_bit(theirs_real: dict) -> None:
    from pl_dsl.science.datasets import REAL_DATASETS, files_content
    from pl_dsl.science.reference import draws
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    for (kind, _, _, seed), run in theirs_real.items():
        data = DataConfig(kind, 784, None, None, None, REAL_DATASETS[kind].default_classes, None,
                          files_content(kind, None))
        ours = draws(seed, data, NetworkConfig(REAL_WIDTH, SLOPE, "gaussian", True), torch.device("cpu"), "test")
        (train_x, train_y), (test_x, test_y) = run["drawn"]["data"]
        f_init, g_init = run["drawn"]["nets"]
        for net, their in ((ours.f, f_init), (ours.g, g_init)):
            assert torch.equal(net.weight, their["linear.weight"]) and torch.equal(net.bias, their["linear.bias"])
            assert torch.equal(net.readout, their["readout"].flatten())
        assert torch.equal(ours.x, train_x) and torch.equal(ours.y, train_y.float()), kind
        assert torch.equal(ours.x_test, test_x) and torch.equal(ours.y_test, test_y.float()), kind
        # the targets follow the loader's draw: without it they would differ
        assert torch.equal(ours.targets, run["drawn"]["targets"][0].float()), kind


def run_specs(specs: list[str], folder: Path) -> Path:
    """One `pl-dsl run` of the specs, written into the folder."""
    files = []
    for text in specs:
        name = text.splitlines()[0].split(": ")[1]
        files.append(str(folder / f"{name}.yaml"))
        Path(files[-1]).write_text(text)
    done = run_cli("run", *files, "--cores", "2", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder


def compare(theirs: dict, folder: Path) -> int:
    """Compare every run's metrics under the folder with their run's; how many were compared."""
    compared = 0
    for metrics_file in (folder / "results").glob("reference-*/runs/*/metrics.json"):
        record = json.loads(metrics_file.read_text())
        config = record["spec"]
        key = (config["data"]["kind"], config["scenario"], config["train_f"]["loss"], config["seed"])
        their = theirs[key]["metrics"]
        ours = record["metrics"]
        assert ours["f_train_acc"] == pytest.approx(their["acc"], abs=1e-6), key
        assert ours["g_clean_acc"] == pytest.approx(their["adv_acc_for_natural"], abs=1e-6), key
        assert ours["agreement"] == pytest.approx(their["agreement"], abs=1e-6), key
        compared += 1
    return compared


def test_a_reference_run_gives_their_accuracies(theirs: dict, ours: Path) -> None:
    assert compare(theirs, ours) == len(CONFIGS)


def test_a_reference_run_on_real_data_gives_their_accuracies(theirs_real: dict, tmp_path: Path) -> None:
    assert compare(theirs_real, run_specs([spec(kind) for kind in THEIR_DATASETS], tmp_path)) == len(REAL_CONFIGS)
    # neither run is degenerate: f learnt its training set
    assert all(run["metrics"]["acc"] > 0.9 for run in theirs_real.values())


def test_reference_mode_refuses_what_their_script_does_not_do(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(spec("gauss").replace("targets: random", "targets: balanced")
                                     .replace("n_test: 1000", "n_test: 500"))
    done = run_cli("validate", str(tmp_path / "s.yaml"))
    assert done.returncode == 1
    assert "attack.targets: rng: reference replays the authors' train.py, which has attack.targets = random" \
        in done.stderr
    assert "data.n_test: rng: reference" in done.stderr and ":4:" in done.stderr  # at the data line
    # real data: every sample of their two classes, as their loader takes them
    (tmp_path / "m.yaml").write_text(real_spec("mnist").replace("{kind: mnist}", "{kind: mnist, n_train: 1000, "
                                                                                 "classes: [3, 5]}"))
    done = run_cli("validate", str(tmp_path / "m.yaml"))
    assert done.returncode == 1
    assert ("data.n_train: rng: reference replays the authors' train.py, which has data.n_train = every sample of "
            "the two classes (no count given); this run has 1000") in done.stderr
    assert "data.classes: rng: reference replays the authors' train.py, which has data.classes = [1, 2]; this run " \
           "has [3, 5]" in done.stderr


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


def test_a_reference_map_is_their_map_py(theirs: dict, ours: Path, tmp_path: Path) -> None:
    """Their train.py --for_map then their map.py's calculation (CPU, fp32, samplings 100) against
    a decision map of `pl-dsl run` in reference mode: the same f-hat and g-hat from their
    Monte-Carlo Phi, and the same agreement of f and g, on the same grid."""
    kind, scenario, loss, seed = CONFIGS[2]  # Shifted Gauss (a)
    run = theirs[(kind, scenario, loss, seed)]
    (x, y), _ = run["drawn"]["data"]
    r = run["trained"]["R"]
    z = torch.randn(40, DIM, generator=torch.Generator().manual_seed(0)) * 2
    their_map = run_their_map({"X": x, "y": y, "R": r, "Z": z, "gamma": SLOPE, "width": WIDTH,
                               "f": run["trained"]["f"], "g": run["trained"]["g"], "limits": list(MAP_LIMITS),
                               "resolution": MAP_RESOLUTION, "samplings": 100}, tmp_path)

    from pl_dsl.science.reference import their_phi
    from pl_dsl.science.theory import direction, f_hat, g_hat, phi

    x, y = x.float(), y.float()
    assert torch.equal(their_phi(x, z, SLOPE), their_map["phi_z"])  # their kernel, bit for bit
    assert not torch.allclose(phi(x, z, SLOPE), their_map["phi_z"], atol=1e-3)  # and not the closed form
    w = direction(x, y, SLOPE, kernel=their_phi)
    assert torch.allclose(f_hat(x, y, z, SLOPE, kernel=their_phi), their_map["hat_f_z"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(g_hat(r, w, z, SLOPE, kernel=their_phi), their_map["hat_g_z"], rtol=1e-5, atol=1e-6)

    runs = {m.parent: json.loads(m.read_text())["spec"] for m in (ours / "results").glob("reference-*/runs/*/metrics.json")}
    maps = [np.load(folder / "decision_map.npz") for folder, config in runs.items()
            if (config["seed"], config["data"]["kind"]) == (seed, kind)]
    assert len(maps) == 1
    # their rows run from the top of the plane down, ours from the bottom up
    for name, their_name in (("fhat", "hat_f"), ("ghat", "hat_g")):
        assert np.allclose(maps[0][name], np.flipud(their_map[their_name].numpy()), rtol=1e-4, atol=1e-6), name
    assert np.array_equal(maps[0]["agree"], np.flipud(their_map["agreements"].numpy().astype(bool)))


def their_order_on_a_device(seed: int, data, network, device: torch.device) -> tuple:
    """Their train.py's draws for synthetic data written out for a run on `device`, step by step:
    set_seed; f's TwoLayerNet on the CPU; the data on the device; the targets on the device; g's
    TwoLayerNet on the CPU."""
    from pl_dsl.science.reference import GENERATORS, rand_labels, their_net

    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device's, as their set_seed
    f = their_net(data.dim, network.width)
    x, _ = GENERATORS[data.kind](data, True, device)
    targets = rand_labels(len(x), device)
    return f, x, targets, their_net(data.dim, network.width)


def test_on_a_gpu_the_networks_draw_from_the_cpu_generator_and_the_data_from_the_device() -> None:
    """The CUDA path's draw order, on the CPU: a device that records shapes only ('meta') stands in
    for the GPU, whose generator the data, targets and test samples use; f's and g's weights (and a
    real data set's loader draw) come from the CPU generator alone, so g's weights are the CPU
    generator's next draws after f's (after the loader's int64 for real data), whatever the data."""
    from pl_dsl.science.reference import draws, their_net
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    network, gpu = NetworkConfig(WIDTH, SLOPE, "gaussian", True), torch.device("meta")
    for kind in ("gauss", "shifted_gauss"):
        data = DataConfig(kind, DIM, N, 1000, 0.3 if kind == "shifted_gauss" else None)
        ours = draws(11, data, network, gpu, until="test")
        torch.manual_seed(11)
        f, g = their_net(DIM, WIDTH), their_net(DIM, WIDTH)
        assert torch.equal(ours.f.weight, f.weight) and torch.equal(ours.g.weight, g.weight), kind
        assert torch.equal(ours.g.readout, g.readout.flatten()) and torch.equal(ours.g.bias, g.bias)
        assert ours.x.device.type == ours.targets.device.type == ours.x_test.device.type == "meta"
        assert ours.x.shape == (N, DIM) and ours.targets.shape == (N,) and ours.x_test.shape == (1000, DIM)
        # on the CPU the same seed gives another g: there the data and targets come between f and g
        assert not torch.equal(draws(11, data, network, torch.device("cpu"), until="g").g.weight, g.weight)


@pytest.mark.cuda
def test_on_cuda_the_draws_follow_their_order() -> None:
    """On a CUDA device: the replay equals their order written out step by step on that device."""
    from pl_dsl.science.reference import draws
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    network, gpu = NetworkConfig(WIDTH, SLOPE, "gaussian", True), torch.device("cuda")
    for kind in ("gauss", "shifted_gauss"):
        data = DataConfig(kind, DIM, N, 1000, 0.3 if kind == "shifted_gauss" else None)
        ours = draws(11, data, network, gpu, until="g")
        f, x, targets, g = their_order_on_a_device(11, data, network, gpu)
        assert ours.x.is_cuda and torch.equal(ours.x, x) and torch.equal(ours.targets, targets), kind
        assert torch.equal(ours.f.weight, f.weight) and torch.equal(ours.g.weight, g.weight), kind


def test_on_a_gpu_a_real_data_set_takes_one_cpu_draw_between_f_and_g() -> None:
    """Real data on the stand-in GPU: the CPU generator gives f, then the DataLoader's int64, then g."""
    require_real_data()
    from pl_dsl.science.datasets import REAL_DATASETS, files_content
    from pl_dsl.science.reference import draws, their_net
    from pl_dsl.spec.config import DataConfig, NetworkConfig

    data = DataConfig("mnist", 784, None, None, None, REAL_DATASETS["mnist"].default_classes, None,
                      files_content("mnist", None))
    ours = draws(5, data, NetworkConfig(REAL_WIDTH, SLOPE, "gaussian", True), torch.device("meta"), until="g")
    torch.manual_seed(5)
    f = their_net(784, REAL_WIDTH)
    torch.empty((), dtype=torch.int64).random_()
    g = their_net(784, REAL_WIDTH)
    assert torch.equal(ours.f.weight, f.weight) and torch.equal(ours.g.weight, g.weight)
    assert ours.x.device.type == "meta" and ours.x.shape == (12700, 784)


# Their arithmetic where it departs from a textbook computation, against their train.py: each
# configuration is the cheapest found to reach its regime, and each asserts that their run does.
# (name, their arguments): slopes 0.0 and 0.9 beside the 0.5 above.
REGIMES = {
    # logistic, large lr, Shifted Gauss (b): |f| beyond 88.72, their exp overflows at the targets
    # that disagree with f, those perturbations are NaN, g trains on them and becomes NaN
    "overflow": {"hidden_dim": 50, "slope": 0.0, "loss_name": "logistic", "lr_1": 100.0, "lr_2": 10.0,
                 "epochs_1": 100, "epochs_2": 20, "perturbation_size": 0.1, "seed": 6, "on_original": True,
                 "in_dim": 20, "data_gen_method": "shifted_gauss", "n_sample": 200},
    # logistic, T = 1000: margins above about 28 make the gradient shorter than normalize's floor of
    # 1e-12, so their perturbation is shorter than eps (down to 0), where a projection would keep eps
    "floor": {"hidden_dim": 50, "slope": 0.9, "loss_name": "logistic", "lr_1": 3.0, "lr_2": 1.0,
              "epochs_1": 1000, "epochs_2": 20, "perturbation_size": 0.1, "seed": 7, "on_original": False,
              "in_dim": 20, "data_gen_method": "shifted_gauss", "n_sample": 200},
}
# Runs of their bash/train.sh, drawn with a fixed seed among those estimated under 30 s on a core.
TRAIN_SH_DRAW = (2, 32)


def reference_spec(name: str, arguments: dict) -> str:
    """A pl-dsl spec in reference mode for one command line of their train.py."""
    if "dataset_name" in arguments:
        kind = next(k for k, v in THEIR_DATASETS.items() if v == arguments["dataset_name"])
        data = f"{{kind: {kind}}}"
    else:
        data = (f"{{kind: {arguments['data_gen_method']}, dim: {arguments['in_dim']}, n_train: {arguments['n_sample']}, "
                "n_test: 1000}")
    return f"""name: {name}
rng: reference
device: cpu
data: {data}
network: {{width: {arguments['hidden_dim']}, leaky_slope: {arguments['slope']}}}
training: {{loss: {arguments['loss_name']}, steps: {arguments['epochs_1']}, lr: {arguments['lr_1']}, optimizer: sgd,
            momentum: 0.9, schedule: plateau}}
train_g: {{steps: {arguments['epochs_2']}, lr: {arguments['lr_2']}}}
attack: {{norm: l2, eps: {arguments['perturbation_size']}, targets: random}}
scenario: {'b' if arguments['on_original'] else 'a'}
seeds: [{arguments['seed']}]
"""


@pytest.fixture(scope="module")
def regimes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, dict, dict]]:
    """name -> (their arguments, their run with --for_map, our run: metrics.json plus g's and r_n's files)."""
    require_authors()
    from their_train_sh import drawn

    from pl_dsl.engine.paths import Layout
    from pl_dsl.engine.store import load_file

    cases = dict(REGIMES)
    cases.update({f"train-sh-{i}": arguments for i, arguments in enumerate(drawn(*TRAIN_SH_DRAW))})
    folder = tmp_path_factory.mktemp("regimes")
    their_runs = run_theirs_all([{**arguments, "for_map": True} for arguments in cases.values()], folder)
    for name, arguments in cases.items():
        (folder / f"{name}.yaml").write_text(reference_spec(name, arguments))
    # every job on two threads, as their script's products here: r_n's last bits follow the
    # threads of the input-gradient product at d = 10 000 (one thread each gives other bits)
    done = run_cli("run", *(str(folder / f"{name}.yaml") for name in cases), "--cores", "2", "--", "--config",
                   "threads=2", cwd=folder)
    assert done.returncode == 0, done.stderr
    found = {}
    for (name, arguments), theirs in zip(cases.items(), their_runs, strict=True):
        (record_file,) = (folder / "results" / name / "runs").glob("*/metrics.json")
        record = json.loads(record_file.read_text())
        layout = Layout(folder / "results")
        ours = {"record": record, "g": load_file(layout.unit("train_g", record["units"]["train_g"]), "model.pt"),
                "attack": load_file(layout.unit("attack", record["units"]["attack"]), "perturbations.pt")}
        found[name] = (arguments, theirs, {**ours, "folder": folder})
    return found


def test_their_arithmetic_gives_their_numbers_where_it_overflows_and_floors(regimes: dict) -> None:
    """Every case: f, g and agreement to 1e-6, g's NaN pattern and r_n (so their norms) equal to theirs."""
    for name, (arguments, theirs, ours) in regimes.items():
        metrics = ours["record"]["metrics"]
        assert metrics["f_train_acc"] == pytest.approx(theirs["metrics"]["acc"], abs=1e-6), name
        assert metrics["g_clean_acc"] == pytest.approx(theirs["metrics"]["adv_acc_for_natural"], abs=1e-6), name
        assert metrics["agreement"] == pytest.approx(theirs["metrics"]["agreement"], abs=1e-6), name
        their_g, our_g = theirs["trained"]["g"], ours["g"]["state"]
        assert torch.equal(their_g["linear.weight"].isnan(), our_g["weight"].isnan()), name
        assert torch.equal(their_g["linear.bias"].isnan(), our_g["bias"].isnan()), name
        # g's inputs R (r_n in (a), x_n + r_n in (b)) bit for bit, NaN where theirs are
        (x, _), _ = theirs["drawn"]["data"]
        their_inputs, delta = theirs["trained"]["R"].flatten(1), ours["attack"]["delta"]
        our_inputs = x + delta if arguments["on_original"] else delta
        assert torch.equal(their_inputs.isnan(), our_inputs.isnan()), name
        assert torch.equal(their_inputs.nan_to_num(), our_inputs.nan_to_num()), name
        if not arguments["on_original"]:  # the perturbations' norms, as theirs
            assert torch.equal(their_inputs.norm(dim=1).nan_to_num(), delta.norm(dim=1).nan_to_num()), name


def test_each_regime_is_reached_and_marked(regimes: dict) -> None:
    """Their overflow case has NaN perturbations and a NaN g, scored 0 and marked in our table; their
    floor case has finite perturbations shorter than eps."""
    _, theirs, ours = regimes["overflow"]
    assert theirs["trained"]["g"]["linear.weight"].isnan().all()
    assert theirs["metrics"]["adv_acc_for_natural"] == 0.0 and theirs["metrics"]["agreement"] == 0.0
    record = ours["record"]
    assert record["status"] == "non-finite" and "g non-finite (as their code)" in record["note"]
    assert 0 < record["metrics"]["pert_nonfinite"] < 1
    # a reader sees it: under the results table, in status, in a claim's detail, in a figure's caption
    shown = run_cli("results", "overflow", cwd=ours["folder"])
    assert "1 of 1 runs went non-finite as the authors' code computes them" in shown.stdout
    assert "g non-finite (as their code)" in shown.stdout
    assert "1 runs went non-finite" in run_cli("status", "overflow", cwd=ours["folder"]).stdout
    from pl_dsl.report.claims import evaluate
    from pl_dsl.report.figures import drawing_note, nonfinite_points
    from pl_dsl.report.results import read_table

    rows = read_table(ours["folder"] / "results/overflow/results.csv")
    verdict = evaluate({"claim": "g learns", "kind": "at_least", "metric": "g_clean_acc", "threshold": 0.9}, rows, {}, [])
    assert not verdict.passed and verdict.value == 0.0 and "1 of 1 runs non-finite (as their code" in verdict.detail
    assert nonfinite_points(rows, "seed") == "seed=6 (1 of 1)"
    assert "runs non-finite as their code" in drawing_note(rows, [nonfinite_points(rows, "seed")])
    arguments, theirs, ours = regimes["floor"]
    r = theirs["trained"]["R"]
    norms = r.norm(dim=1)
    assert r.isfinite().all() and (norms < arguments["perturbation_size"] * 0.999).sum() > 0
    assert ours["record"]["metrics"]["pert_norm_min"] < arguments["perturbation_size"] * 0.999
    assert ours["record"]["status"] == "ok"
    assert {arguments["slope"] for arguments, _, _ in regimes.values()} - {0.5}  # slopes other than 0.5


def test_every_field_of_a_resolved_run_is_replayed_refused_or_without_effect() -> None:
    """A field added to the language later cannot pass reference mode unaccounted for."""
    from pl_dsl.science.reference import accounted_for
    from pl_dsl.spec.check import check_text
    from pl_dsl.spec.config import to_json

    def paths(value: object, prefix: str = "") -> list[str]:
        if isinstance(value, dict):
            return [p for key, item in value.items() for p in paths(item, f"{prefix}{key}.")]
        return [prefix[:-1]]

    for kind in ("gauss", "shifted_gauss", "mnist"):
        experiment, errors = check_text(spec(kind) if kind != "mnist" else real_spec(kind), "s.yaml")
        assert experiment is not None and not errors, errors
        fields = paths(to_json(experiment.runs[0].config))
        assert len(fields) > 40
        assert [f for f in fields if not accounted_for(f)] == [], kind


def test_reference_mode_refuses_their_generator_cannot_make(tmp_path: Path) -> None:
    """A mean shift other than their 0.3, and a loss for g other than f's (their one loss_name)."""
    (tmp_path / "s.yaml").write_text(spec("shifted_gauss").replace("n_test: 1000}", "n_test: 1000, mean_shift: 0.5}")
                                     .replace("train_g: {", "train_g: {loss: identity, "))
    done = run_cli("validate", str(tmp_path / "s.yaml"))
    assert done.returncode == 1
    assert "data.mean_shift: rng: reference replays the authors' train.py, which has data.mean_shift = 0.3; this " \
           "run has 0.5" in done.stderr
    assert "train_g.loss: rng: reference replays the authors' train.py, which trains f and g with one loss" \
        in done.stderr
    (tmp_path / "b.yaml").write_text(spec("gauss").replace("network: {", "network: {bias: false, "))
    done = run_cli("validate", str(tmp_path / "b.yaml"))
    assert "network.bias = true; this run has false" in done.stderr  # the spec's words, not Python's False
