#!/usr/bin/env bash
# The authors' own environment, for tests/test_reference_streams.py, which runs their train.py
# (../shared/reference/perturbation-learning): their pins (pytorch-lightning 1.8.6, torchmetrics
# 0.11.4), torchvision for their module-level imports with the torch it is built for, matplotlib
# and seaborn (their utils package imports its figure helpers), and a
# setuptools below 70 installed last (pytorch-lightning 1.8.6 imports pkg_resources). Built once
# into $PL_DSL_AUTHORS_ENV (default ~/.cache/pl-dsl/authors-env) and kept: a rerun with the
# environment complete does nothing.
set -euo pipefail
env="${PL_DSL_AUTHORS_ENV:-$HOME/.cache/pl-dsl/authors-env}"
stamp="$env/.complete-2"
[ -f "$stamp" ] && exit 0
rm -rf "$env"
python3 -m venv "$env"
"$env/bin/pip" install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1 \
    pytorch-lightning==1.8.6 torchmetrics==0.11.4 tqdm matplotlib seaborn
"$env/bin/pip" install --quiet --disable-pip-version-check 'setuptools<70'
"$env/bin/python" -c "import pytorch_lightning, torchmetrics, torchvision, matplotlib, seaborn; from pytorch_lightning.lite import LightningLite"
touch "$stamp"
