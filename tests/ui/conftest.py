"""Browser test fixtures: Debian's chromium driven by Playwright, and an Airflow of the test's own.

The Airflow under test is tests/airflow_instance.py's (subprocesses on a free port, its own folders; nothing
here imports label_backfill or chdb).

The UI tests run only when asked for (``pytest -m ui tests/ui``, ``make test-ui``): a plain ``pytest``
(``make test``) reports them as skipped, because they need chromium and take about two minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.airflow_instance import REPO, AirflowUnderTest, airflow_instance, seed_small, skip_unless_selected

ARTIFACTS = REPO / "artifacts" / "ui"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = (
    "install it with: apt-get install -y chromium chromium-driver "
    "(Debian's browser; `playwright install` is not used: no browser downloads here), "
    "or point CHROMIUM_PATH at a chromium binary"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_selected(
        config, items, "ui", "browser test: run it with `pytest -m ui tests/ui` (make test-ui)"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the test (``item.rep_call``): a fixture's teardown can see a failure."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"chromium not found at {path}: {INSTALL_HINT}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "the Python playwright package is missing: "
            ".venv/bin/pip install --require-hashes --only-binary :all: -r requirements-ui.lock",
            pytrace=False,
        )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


# the scenario: 2026-02-03 fails its first 3 attempts after a partial write; with the day's default retries=2
# the run fails, and attempt 4 (after a clear) succeeds
FAULT_INJECTION = {
    "LABEL_BACKFILL_LOCAL_FAIL_DAYS": "2026-02-03",
    "LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS": "3",
    "LABEL_BACKFILL_DAY_RETRIES": "2",
}


@pytest.fixture(scope="module")
def airflow_ui(request: pytest.FixtureRequest) -> Iterator[AirflowUnderTest]:
    """Seed the incident, start Airflow (4 components) on a free port; always tear everything down, keeping
    the components' and the tasks' logs in ``artifacts/ui/logs/<test module>/``."""
    logs = ARTIFACTS / "logs" / request.module.__name__.rsplit(".", 1)[-1]
    with airflow_instance("ui", FAULT_INJECTION, seed_small, logs) as airflow:
        yield airflow
