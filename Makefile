# Set-up and the two quick-start commands. Needs only a system Python 3.10+ (python3).
PYTHON ?= python3
CORES ?= 2
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup bytecode quickstart lint test paper-small benchmark clean

# torch is pinned here; pyproject.toml keeps a range that admits it, so the second install adds
# nothing torch-related. TORCH=cpu (default) takes the CPU wheel; TORCH=cuda takes the CUDA build
# of the same release from pip's configured index (torch 2.13.0 for Linux is built for CUDA 13.0),
# or from TORCH_INDEX when set: the URL of an index with builds for an older CUDA driver. Check
# the result with `.venv/bin/pl-dsl doctor`.
TORCH ?= cpu
TORCH_INDEX ?=
ifeq ($(TORCH),cuda)
TORCH_INSTALL := 'torch==2.13.0,!=2.13.0+cpu' $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
else ifeq ($(TORCH),cpu)
TORCH_INSTALL := torch==2.13.0
else
$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif
STAMP := $(VENV)/.pl-dsl-installed-$(TORCH)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	rm -f $(VENV)/.pl-dsl-installed-*
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH_INSTALL)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,cluster,mlflow,tensorboard]'
	touch $(STAMP)

setup: $(STAMP)

# pl_dsl's bytecode, written beside its sources as pip writes an installed package's: every
# process of a run (pl-dsl, Snakemake, each job) then reads it instead of compiling pl_dsl, also
# where PYTHONDONTWRITEBYTECODE is set. Only changed modules are compiled again.
bytecode: setup
	$(BIN)/python -m compileall -q pl_dsl

quickstart: bytecode
	$(BIN)/pl-dsl run quickstart --cores $(CORES)

lint: setup
	$(BIN)/ruff check pl_dsl tests benchmarks
	$(BIN)/mypy

# The tests in CORES worker processes, each test file whole in one (its module fixtures computed once).
test: lint bytecode
	$(BIN)/python -m pytest -n $(CORES) --dist loadfile $(PYTEST_ARGS)

# The paper's figures and claims at CPU scale (experiments/paper-small/), MNIST and Fashion-MNIST
# included: snakemake refuses to start, naming the files and how to get them, when they are missing.
paper-small: bytecode
	$(BIN)/pl-dsl run paper-small --cores $(CORES)

benchmark: bytecode
	$(BIN)/python benchmarks/performance.py

clean:
	rm -rf results logs .snakemake
