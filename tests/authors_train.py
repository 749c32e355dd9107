"""The authors' train.py (../shared/reference/perturbation-learning, its CPU fp32 port) for one
configuration, run in their own environment (.ci/authors_env.sh builds it), with what it
draws recorded. `run_theirs` is what tests and benchmarks call; it runs this file with their Python:

    python tests/authors_train.py train REFERENCE_DIR OUT.pt ARGS.json   (a list: one run each)
    python tests/authors_train.py map REFERENCE_DIR OUT.pt INPUTS.pt

ARGS.json: a list of their command-line values (hidden_dim, slope, loss_name, lr_1, lr_2, epochs_1,
epochs_2, perturbation_size, seed, on_original, and either in_dim, data_gen_method, n_sample or
dataset_name, dataset_root: a folder laid out as their loader expects, see `their_dataset_root`).
Their code runs unchanged: their Main(...).run(...) with their interface; this harness only wraps their
TwoLayerNet, data generator and attack to keep a copy of each network's initial weights, the
data drawn and the target labels, and then reads the accuracies their run saved.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REFERENCE = Path(__file__).resolve().parent.parent.parent / "shared" / "reference" / "perturbation-learning"
AUTHORS_ENV = Path(os.environ.get("PL_DSL_AUTHORS_ENV", Path.home() / ".cache" / "pl-dsl" / "authors-env"))
AUTHORS_PYTHON = AUTHORS_ENV / "bin" / "python"


# Their data set classes (utils/datasets.py) per pl-dsl data kind: torchvision reads the unzipped
# IDX files from <root>/<class name>/raw.
THEIR_DATASETS = {"mnist": "MNIST", "fmnist": "FMNIST"}


def their_dataset_root(kind: str, folder: Path) -> Path:
    """A root for their loader holding the data set pl-dsl reads here (its located files, unzipped
    into <root>/MNIST/raw or <root>/FMNIST/raw, where their torchvision subclasses look)."""
    import gzip
    import shutil

    from pl_dsl.science.datasets import locate

    raw = folder / THEIR_DATASETS[kind] / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name, path in locate(kind, None).items():
        opened = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")
        with opened as source, (raw / name).open("wb") as target:
            shutil.copyfileobj(source, target)
    return folder


def run_theirs(arguments: dict, folder: Path) -> dict:
    """Their train.py with these command-line values: {"drawn": {"nets", "data", "targets"},
    "metrics": {"acc", "adv_acc_for_natural", "agreement"}, "trained": {}} (with "for_map": True, as
    their --for_map, "trained" holds f's and g's state dicts and the perturbed set R that their map.py
    reads). Raises with their stderr on failure."""
    return run_theirs_all([arguments], folder)[0]


def run_theirs_all(configurations: list[dict], folder: Path) -> list[dict]:
    """`run_theirs` of each configuration in turn, in one process of their environment: their
    imports (Lightning, torch) are paid once, and each run seeds itself as their script does."""
    first = configurations[0]
    data = first.get("data_gen_method", first.get("dataset_name"))
    name = f"{data}-{first['seed']}-{first['lr_1']}-{first['lr_2']}-{len(configurations)}"
    given, out = folder / f"{name}.json", folder / f"{name}.pt"
    given.write_text(json.dumps(configurations))
    return _in_their_environment("train", given, out)


def run_their_map(inputs: dict, folder: Path) -> dict:
    """Their map.py's calculation (_MapInterface.calc, CPU, fp32) on these inputs: X, y, R (the
    perturbed training set g learnt), gamma, f and g (TwoLayerNet state dicts) with width, limits
    (their two numbers), resolution, samplings; and their Phi, hat_f, hat_g at the points Z.
    Returns calc's dict (the grid's "hat_f", "hat_g", "agreements", ...) plus "phi_z", "hat_f_z",
    "hat_g_z" at Z."""
    given, out = folder / "map-inputs.pt", folder / "map.pt"
    torch.save(inputs, given)
    return _in_their_environment("map", given, out)


def _in_their_environment(command: str, given: Path, out: Path) -> dict:
    done = subprocess.run([str(AUTHORS_PYTHON), __file__, command, str(REFERENCE), str(out), str(given)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"their {command} failed: {done.stderr[-3000:]}")
    return torch.load(out)


def record(reference: str, out: str, configurations: list[dict]) -> None:
    """Run their Main for each configuration in turn, keeping copies of what each draws (in their
    environment)."""
    sys.path.insert(0, reference)
    os.chdir(reference)
    import train  # their module, with their imports
    from utils import classifier

    torch.save([_record_one(train, classifier, arguments) for arguments in configurations], out)


def _record_one(train, classifier, arguments: dict) -> dict:
    """One run of their Main with recording wrappers around their classes, restored afterwards."""
    drawn = {"nets": [], "data": [], "targets": []}
    interface_class = train.TrainingInterfaceReal if "dataset_name" in arguments else train.TrainingInterfaceSynthetic
    their_init = classifier.TwoLayerNet.__init__
    their_generator = interface_class.gen_data_and_labels
    their_attack = train._TrainingInterface.gen_perturbations

    def recording_init(self, *args, **kwargs):
        their_init(self, *args, **kwargs)
        drawn["nets"].append({k: v.detach().clone() for k, v in self.state_dict().items()})

    def recording_generator(self, is_train, device):
        data, labels = their_generator(self, is_train, device)
        drawn["data"].append((data.detach().cpu().flatten(1).clone(), labels.detach().cpu().clone()))
        return data, labels

    def recording_attack(classifier_, data, target_labels, loss_func, perturbation_size):
        drawn["targets"].append(target_labels.detach().cpu().clone())
        return their_attack(classifier_, data, target_labels, loss_func, perturbation_size)

    classifier.TwoLayerNet.__init__ = recording_init
    interface_class.gen_data_and_labels = recording_generator
    train._TrainingInterface.gen_perturbations = staticmethod(recording_attack)
    for_map = arguments.pop("for_map", False)  # also keep what their map.py reads
    try:
        with tempfile.TemporaryDirectory() as root:
            interface = interface_class(data_root=root, **arguments)
            train.Main(accelerator="cpu", devices=1, precision=32).run(interface, False, for_map)

            def saved(key: str):
                return torch.load(os.path.join(interface.path, key), weights_only=False)

            metrics = {key: saved(key) for key in ("acc", "adv_acc_for_natural", "agreement")}
            trained = {"f": saved("classifier"), "g": saved("adv_classifier"), "R": saved("advs")} if for_map else {}
    finally:
        classifier.TwoLayerNet.__init__ = their_init
        interface_class.gen_data_and_labels = their_generator
        train._TrainingInterface.gen_perturbations = staticmethod(their_attack)
    return {"drawn": drawn, "metrics": metrics, "trained": trained, "torch": str(torch.__version__)}


def their_map(reference: str, out: str, inputs: dict) -> None:
    """Their map calculation and kernel functions on the inputs (in their environment)."""
    sys.path.insert(0, reference)
    os.chdir(reference)
    import map as their_map_module  # their module, with their imports
    from utils import theory
    from utils.classifier import TwoLayerNet

    networks = []
    for name in ("f", "g"):
        net = TwoLayerNet(inputs["X"].shape[1], inputs["width"], inputs["gamma"])
        net.load_state_dict(inputs[name])
        networks.append(net.eval())
    X, y, R, Z, gamma, samplings = (inputs[k] for k in ("X", "y", "R", "Z", "gamma", "samplings"))
    with torch.no_grad():
        calculated = their_map_module._MapInterface.calc(X, y, R, gamma, *networks, inputs["limits"],
                                                         inputs["resolution"], inputs["resolution"] ** 2, samplings)
        calculated.update({"phi_z": theory.Phi(X, Z, gamma, samplings, 0),
                           "hat_f_z": theory.hat_f(X, y, Z, gamma, samplings),
                           "hat_g_z": theory.hat_g(X, y, Z, R, gamma, samplings)})
    torch.save(calculated, out)


if __name__ == "__main__":
    what, reference_dir, out_file, given_file = sys.argv[1:5]
    if what == "train":
        record(reference_dir, out_file, json.loads(Path(given_file).read_text()))
    else:
        their_map(reference_dir, out_file, torch.load(given_file))
