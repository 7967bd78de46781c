# label-backfill: every target sets itself up (venv, pinned dependencies) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml jobs/label_conversations/pyproject.toml | md5sum | cut -c1-12)

.PHONY: setup test test-package test-ui test-unit test-integration lint demo bench airflow clean stack-down

setup: $(STAMP)

$(STAMP):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e . -e jobs/label_conversations
	@rm -f $(VENV)/.installed-*; touch $@

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check dags plugins jobs tests

test: setup lint
	$(BIN)/pytest

# The built wheel in a fresh virtualenv with the production requirements only (part of `make test`).
test-package: setup
	$(BIN)/pytest -m package tests/package

test-unit: setup
	$(BIN)/pytest -m "unit or dag"

test-integration: setup
	$(BIN)/pytest -m integration

demo: setup
	bash scripts/demo.sh

# Browser test: Debian's chromium driven by Playwright (no browser download); CI runs it after make test.
test-ui: setup
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	  || { echo "chromium missing: sudo apt-get install -y chromium chromium-driver"; exit 1; }
	$(BIN)/python -m pip install --quiet -r requirements-ui.txt -c constraints.txt
	$(BIN)/pytest -m ui tests/ui

# Airflow 3 UI on the embedded stack: http://127.0.0.1:8080, admin / admin (see README).
airflow: setup
	bash scripts/airflow.sh

bench: setup
	$(BIN)/python benchmarks/bench.py

stack-down: setup
	$(BIN)/python -m label_backfill.dev.stack down

clean: stack-down
	rm -rf .local reports
