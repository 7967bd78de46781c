# label-backfill: every target sets itself up (venv, pinned dependencies) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml | md5sum | cut -c1-12)

.PHONY: setup test test-unit test-integration lint demo bench airflow clean stack-down

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@rm -f $(VENV)/.installed-*; touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check dags plugins jobs tests

test: setup lint
	$(BIN)/pytest

test-unit: setup
	$(BIN)/pytest -m "unit or dag"

test-integration: setup
	$(BIN)/pytest -m integration

demo: setup
	bash scripts/demo.sh

bench: setup
	$(BIN)/python benchmarks/bench.py

stack-down: setup
	$(BIN)/python -m label_backfill.dev.stack down

clean: stack-down
	rm -rf .local reports
