# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench

$(STAMP): pyproject.toml
	@echo "Setting up .venv: chatops-agent and its libraries (about 160 packages, 2.3 GB)."
	@echo "It takes minutes (6 measured on a busy 2-core machine); later runs skip this step."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/python scripts/pip_install.py -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

## Set up and run the sandbox: the whole product on this machine, used from a browser
## (it prints the URL). Configured services (DATABASE_URL, REDIS_URL, OPENAI_BASE_URL)
## are used; the rest is embedded. With no model configured it answers with the sandbox's
## demo model (fixed rules, not AI); `make run ARGS=--offline` runs without any model.
run: $(STAMP)
	$(BIN)/chatops sandbox $(ARGS)

## Set up and run the whole test suite against real Postgres, Redis and workers.
test: $(STAMP) lint
	sh scripts/ensure_chromium.sh
	sh scripts/ensure_promtool.sh
	sh scripts/ensure_compose.sh
	$(BIN)/python -m pytest
	$(BIN)/python -m bench.run_all --smoke  # every benchmark, briefly: one that breaks fails CI

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## The full benchmarks, one after another (minutes each); `make bench BENCH=smtp_intake`
## runs one. Each keeps its output in bench/results/.
bench: $(STAMP)
	$(BIN)/python -m bench.run_all $(BENCH)
