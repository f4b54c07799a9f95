# mmfusion: `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv and install the package with its dev extras
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]"

train: ## Train the default model (data=digits fusion=gmu); pass ARGS="fusion=concat ..."
	$(BIN)/python -m src.train $(ARGS)

test: ## Fast test suite (excludes tests marked slow)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: ## Only the slow tests (multi-process, real-data, long training)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: ## Every test, slow ones included
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: ## Benchmarks (speed and memory targets); results in bench_out/
	mkdir -p bench_out
	@for suite in $$($(BIN)/python -c "from src.bench.__main__ import suites; print(' '.join(suites()))"); do \
		echo "== bench $$suite"; $(BIN)/python -m src.bench $$suite --out bench_out/$$suite.md || exit 1; done

reproduce-cpu: ## Regenerate docs/results/ on CPU (synthetic, CentralNet digits/MNIST/avMNIST; about 1.5 h on 2 cores)
	PY=$(BIN)/python bash scripts/reproduce_cpu.sh

robustness-cpu: ## Robustness sweeps of the reproduce-cpu checkpoints (CentralNet Tables 2 and 4) into docs/results/robustness_*
	PY=$(BIN)/python bash scripts/robustness_cpu.sh

reproduce-gpu: ## CentralNet Tables 2 and 4 at the paper's protocol on one GPU (REPRO_TINY=1: CPU dry run in minutes)
	PY=$(BIN)/python bash scripts/reproduce_gpu.sh

gpu-check: ## The prepared GPU check into gpu_check_out/ (ARGS="--device cpu --tiny": the CPU dry run)
	PY=$(BIN)/python bash scripts/gpu_check.sh $(ARGS)

device-wheels: ## Wheels the device machine lacks (hydra, omegaconf, antlr4, joblib launcher, wandb) into .device_wheels/
	PY=$(BIN)/python bash scripts/device_wheels.sh download

lint: ## Ruff lint
	$(BIN)/ruff check src tests

format: ## Ruff format and fix imports
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean: ## Remove logs, caches and benchmark outputs
	rm -rf logs outputs multirun bench_out gpu_check_out .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

.PHONY: help install train test test-slow test-all bench reproduce-cpu robustness-cpu reproduce-gpu gpu-check device-wheels lint format clean
