"""Runs the authors' train.py (../shared/reference/perturbation-learning, its CPU fp32 port) for
one synthetic configuration and records what it draws. Run with the Python of their own
environment (.ci/authors_env.sh builds it), from any folder:

    python tests/authors_train.py REFERENCE_DIR OUT.pt ARGS.json

ARGS.json: their command-line values (hidden_dim, slope, loss_name, lr_1, lr_2, epochs_1,
epochs_2, perturbation_size, seed, on_original, in_dim, data_gen_method, n_sample). Their code
runs unchanged: their Main(...).run(...) with their interface; this harness only wraps their
TwoLayerNet, data generator and attack to keep a copy of each network's initial weights, the
data drawn and the target labels, and then reads the accuracies their run saved.
"""

import json
import os
import sys
import tempfile

import torch

reference, out, arguments = sys.argv[1], sys.argv[2], json.loads(open(sys.argv[3]).read())
sys.path.insert(0, reference)
os.chdir(reference)

import train  # noqa: E402  (their module, with their imports)
from utils import classifier  # noqa: E402

drawn = {"nets": [], "data": [], "targets": []}
their_init = classifier.TwoLayerNet.__init__


def recording_init(self, *args, **kwargs):
    their_init(self, *args, **kwargs)
    drawn["nets"].append({k: v.detach().clone() for k, v in self.state_dict().items()})


their_generator = train.TrainingInterfaceSynthetic.gen_data_and_labels


def recording_generator(self, is_train, device):
    data, labels = their_generator(self, is_train, device)
    drawn["data"].append((data.detach().cpu().clone(), labels.detach().cpu().clone()))
    return data, labels


their_attack = train._TrainingInterface.gen_perturbations


def recording_attack(classifier_, data, target_labels, loss_func, perturbation_size):
    drawn["targets"].append(target_labels.detach().cpu().clone())
    return their_attack(classifier_, data, target_labels, loss_func, perturbation_size)


classifier.TwoLayerNet.__init__ = recording_init
train.TrainingInterfaceSynthetic.gen_data_and_labels = recording_generator
train._TrainingInterface.gen_perturbations = staticmethod(recording_attack)

with tempfile.TemporaryDirectory() as root:
    interface = train.TrainingInterfaceSynthetic(data_root=root, **arguments)
    train.Main(accelerator="cpu", devices=1, precision=32).run(interface, False, False)
    saved = {key: torch.load(os.path.join(interface.path, key)) for key in ("acc", "adv_acc_for_natural", "agreement")}
torch.save({"drawn": drawn, "metrics": saved, "torch": str(torch.__version__)}, out)
