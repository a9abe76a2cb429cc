# Set-up and checks. `make setup` once after cloning, then `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch; a plain "torch" requirement would pull a multi-GB
# CUDA build on Linux. On GPU machines set TORCH_SPEC to the build you need.
TORCH_SPEC ?= torch==2.13.0

export MLFLOW_DISABLE_TELEMETRY = true

.PHONY: setup test lint demo

setup:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet "$(TORCH_SPEC)"
	$(VENV)/bin/pip install --quiet -e ".[dev]"

test:
	$(VENV)/bin/python -m pytest -q

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo:
	$(VENV)/bin/deepclust prepare mnist --output data/tables/mnist-test --overwrite
	$(VENV)/bin/deepclust train conf/mnist_mlp.yaml
