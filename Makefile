# label-backfill: every target sets itself up (venv, pinned dependencies) on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCKS := requirements-tools.lock requirements-dev.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml jobs/label_conversations/pyproject.toml | md5sum | cut -c1-12)
# Every install is hash-checked from a lock file written by `make lock` (scripts/lock.sh), wheels only.
PIP_LOCKED := $(BIN)/python -m pip install --quiet --require-hashes --only-binary :all:
# `python3 -m venv` needs ensurepip, which Debian ships apart from python3 (package python3-venv).
VENV_APT := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv

.PHONY: setup check-locks venv tools lock compose-env pin-images test test-package test-ui test-scheduler test-unit test-integration lint demo demo-fleet bench airflow clean stack-down

setup: check-locks $(STAMP)

# The locks must match the requirements files (else: `make lock`); checked on every setup (stdlib, instant).
check-locks:
	@$(PYTHON) scripts/check-locks.py

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

# pip, setuptools and uv from requirements-tools.lock (hash-checked; the new pip then installs the rest).
tools: venv
	$(PIP_LOCKED) -r requirements-tools.lock

# The dev lock, every package pinned with its hashes; then the two projects editable, built by the locked
# setuptools (no build isolation: an isolated build would fetch setuptools unchecked) from local files only.
$(STAMP): | check-locks venv
	$(MAKE) --no-print-directory tools
	$(PIP_LOCKED) -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --no-index -e . -e jobs/label_conversations
	@rm -f $(VENV)/.installed-*; touch $@

# Rewrite every *.lock from the requirements files (after editing one of them): see scripts/lock.sh.
# LOCK_ARGS=--upgrade moves every package to its newest version; by default the locked versions stay.
lock: tools
	bash scripts/lock.sh

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

# One fleet repair of the three demo customers under the real scheduler (Airflow started and stopped here).
demo-fleet: setup
	bash scripts/demo-fleet.sh

# Browser test: Debian's chromium driven by Playwright (no browser download); CI runs it after make test.
# chromium, -common, -driver and -sandbox pinned to this version (scripts/ensure-chromium.sh installs it as
# root); when Debian retires it, `apt-cache policy chromium` lists the versions to pick from.
CHROMIUM_VERSION ?= 150.0.7871.100-1~deb12u1
test-ui: setup
	@bash scripts/ensure-chromium.sh "$(CHROMIUM_VERSION)"
	$(PIP_LOCKED) -r requirements-ui.lock
	$(BIN)/pytest -m ui tests/ui

# The fleet and the customer leases under a real Airflow (scheduler, LocalExecutor, triggerer; started and
# stopped by the tests, REST API only): a few minutes; CI runs it after make test-ui.
test-scheduler: setup
	$(BIN)/pytest -m scheduler tests/scheduler

# Airflow 3 UI on the embedded stack: http://127.0.0.1:8080, user admin, password in .local/airflow-ui-password.
airflow: setup
	bash scripts/airflow.sh

# The compose stack's secrets (Fernet key, JWT and API secrets, Postgres and admin passwords): .env, 0600,
# random per checkout, kept when present (docs/deployment.md).
compose-env:
	$(PYTHON) scripts/compose-env.py

# Pin every compose image and Dockerfile base image by digest (needs a reachable registry; see the script).
pin-images:
	$(PYTHON) scripts/pin-images.py

bench: setup
	$(BIN)/python benchmarks/bench.py

stack-down: setup
	$(BIN)/python -m label_backfill.dev.stack down

# Stops Postgres and deletes its data (as root it lives in /var/lib/label-backfill/<hash>, see README).
clean: setup
	$(BIN)/python -m label_backfill.dev.stack clean
	rm -rf .local reports
