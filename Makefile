# label-backfill: every target sets itself up (venv, pinned dependencies) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt pyproject.toml jobs/label_conversations/pyproject.toml | md5sum | cut -c1-12)
# `python3 -m venv` needs ensurepip, which Debian ships apart from python3 (package python3-venv).
VENV_APT := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv

.PHONY: setup venv test test-package test-ui test-unit test-integration lint demo bench airflow clean stack-down

setup: $(STAMP)

# A venv whose pip works (a failed `python3 -m venv` without ensurepip leaves one without pip: redone).
# No ensurepip: as root install python3-venv (like test-ui does for chromium), else stop with the command.
venv:
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { \
	  $(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "$(PYTHON) -m venv needs ensurepip: installing python3-venv"; $(VENV_APT); \
	    else \
	      echo "$(PYTHON) -m venv needs ensurepip (Debian: package python3-venv). Run:"; \
	      echo "  sudo sh -c '$(VENV_APT)'"; exit 1; \
	    fi; }; \
	  $(PYTHON) -m venv --clear $(VENV); }

$(STAMP): | venv
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

# Stops Postgres and deletes its data (as root it lives in /var/lib/label-backfill/<hash>, see README).
clean: setup
	$(BIN)/python -m label_backfill.dev.stack clean
	rm -rf .local reports
