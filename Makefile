# genlab's everyday commands. The first `make train` or `make test` creates .venv and installs
# everything (torch from the pinned wheels); later calls skip that step unless pyproject.toml changed.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision must come as a matching pair; override for another platform or CUDA build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
STAMP := $(VENV)/.installed
TRAIN_ARGS ?=
# e.g. GPU_CHECK_ARGS="--budget-minutes 6 --out /tmp/gpu.md"
GPU_CHECK_ARGS ?=

.PHONY: install train test test-fast gpu-check tensorboard clean help

help:
	@echo "make train        install if needed, then the quick start (DCGAN on 5,000 MNIST digits, CPU minutes)"
	@echo "make test         install if needed, then the whole test suite"
	@echo "make test-fast    the edit loop: every test but those marked slow (under 2 minutes)"
	@echo "make gpu-check    on a CUDA machine: check and measure genlab there in under 8 minutes (docs/benchmarks.md)"
	@echo "make tensorboard  watch every run under outputs/"
	@echo "make clean        delete outputs/, .cache/ (domain classifiers), build files (keeps .venv; 'make distclean' drops it)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install $(TORCH_SPEC) 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PIP) install -e ".[dev,mlflow,wandb,onnx]" 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(BIN)/python -c "import torch, torchvision, pytorch_lightning, hydra, genlab"
	touch $(STAMP)

install: $(STAMP)

train: $(STAMP)
	$(BIN)/genlab train experiment=quickstart $(TRAIN_ARGS)

# one pytest process per core (pytest-xdist), each with one torch thread (tests/conftest.py)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not slow"

# scripts/gpu_check.py: stops at the first wrong result; without CUDA it runs its CPU mode
gpu-check: $(STAMP)
	PYTHON=$(BIN)/python scripts/gpu_check.sh $(GPU_CHECK_ARGS)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir outputs

clean:
	rm -rf outputs lightning_logs .cache .pytest_cache build dist *.egg-info
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
