# Set-up and the two quick-start commands. Needs only a system Python 3.10+ (python3).
PYTHON ?= python3
CORES ?= 2
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pl-dsl-installed

.PHONY: setup quickstart lint test paper-small benchmark clean

# torch is pinned here (the CPU wheel); pyproject.toml keeps a range that admits it, so the
# second install adds nothing torch-related.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,cluster]'
	touch $(STAMP)

setup: $(STAMP)

quickstart: setup
	$(BIN)/snakemake --cores $(CORES) --config experiments=quickstart
	$(BIN)/pl-dsl results quickstart

lint: setup
	$(BIN)/ruff check pl_dsl tests benchmarks
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The paper's figures and claims at CPU scale (experiments/paper-small/); specs whose data files
# are missing here (MNIST) are skipped with a note.
paper-small: setup
	$(BIN)/snakemake --cores $(CORES) --config experiments=paper-small missing_data=skip
	$(BIN)/pl-dsl runs experiments/paper-small

benchmark: setup
	$(BIN)/python benchmarks/orchestration.py

clean:
	rm -rf results logs .snakemake
