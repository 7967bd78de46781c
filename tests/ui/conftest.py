"""Browser test fixtures: Debian's chromium driven by Playwright, and an Airflow of the test's own.

The Airflow under test runs in subprocesses (``scripts/airflow.sh --background``) on a free port, with its
own LABEL_BACKFILL_LOCAL_DIR / AIRFLOW_HOME / LABEL_BACKFILL_REPORT_DIR in a temporary folder: it never
touches the user's ``.local`` nor the environment tests/conftest.py sets for the other tests. Nothing here
imports label_backfill or chdb (chdb allows one process per data directory: the Airflow task processes
and the subprocesses here take turns through label_backfill.chdb_lock; this process has another stack).

The UI tests run only when asked for (``pytest -m ui tests/ui``, ``make test-ui``): a plain ``pytest``
(``make test``) reports them as skipped, because they need chromium and take about two minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
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
    markexpr = config.getoption("markexpr") or ""
    if re.search(r"(?<!not )\bui\b", markexpr):
        return
    skip = pytest.mark.skip(reason="browser test: run it with `pytest -m ui tests/ui` (make test-ui)")
    for item in items:
        if item.get_closest_marker("ui"):
            item.add_marker(skip)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowUnderTest:
    url: str
    user: str
    password: str
    root: Path
    env: dict[str, str]

    @property
    def report_dir(self) -> Path:
        return Path(self.env["LABEL_BACKFILL_REPORT_DIR"])

    def token(self) -> str:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
            return json.load(resp)["access_token"]

    def api(self, token: str, path: str) -> dict:
        """GET /api/v2<path> (path segments already quoted); a slow answer on a loaded machine is waited for,
        a timed-out one asked again, within one generous bound."""
        req = urllib.request.Request(f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + API_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
                    return json.load(resp)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


API_TIMEOUT = 90  # seconds: the same bound as the browser waits (a 2-core machine under load is slow)


def _clean_env(root: Path, port: int) -> dict[str, str]:
    # tests/conftest.py exported AIRFLOW_* / LABEL_BACKFILL_* for the in-process tests: none of it applies.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LABEL_BACKFILL_"))}
    env.update(
        {
            "LABEL_BACKFILL_LOCAL_DIR": str(root / "stack"),
            "AIRFLOW_HOME": str(root / "airflow"),
            "LABEL_BACKFILL_REPORT_DIR": str(root / "reports"),
            "AIRFLOW_PORT": str(port),
            "AIRFLOW_READY_TIMEOUT": "150",
            # the scenario: 2026-02-03 fails its first 3 attempts after a partial write; with the day's
            # default retries=2 the run fails, and attempt 4 (after a clear) succeeds
            "LABEL_BACKFILL_LOCAL_FAIL_DAYS": "2026-02-03",
            "LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS": "3",
            "LABEL_BACKFILL_DAY_RETRIES": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _run(cmd: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"{what}: no answer after {timeout} s\n{err.stdout or ''}{err.stderr or ''}", pytrace=False
        )
    if proc.returncode:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def _kill_leftovers(pids_file: Path) -> None:
    if not pids_file.exists():
        return
    for line in pids_file.read_text().splitlines():
        try:
            name, pid = line.split()
            if name == "supervisor":
                os.kill(int(pid), signal.SIGKILL)
            else:
                os.killpg(int(pid), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


@pytest.fixture(scope="module")
def airflow_ui(request: pytest.FixtureRequest) -> Iterator[AirflowUnderTest]:
    """Seed the incident, start Airflow (4 components) on a free port; always tear everything down, keeping
    the components' and the tasks' logs in ``artifacts/ui/logs/<test module>/``."""
    root = Path(tempfile.mkdtemp(prefix="label-backfill-ui-"))
    port = _free_port()
    env = _clean_env(root, port)
    # the password: scripts/airflow.sh writes a random one to this 0600 file on the first start
    airflow = AirflowUnderTest(f"http://127.0.0.1:{port}", "admin", "", root, env)
    try:
        t0 = time.monotonic()
        # seed BEFORE Airflow starts: the simulator holds the chdb lock while it runs
        out = _run(
            [sys.executable, "-m", "label_backfill.dev.simulate", "--scale", "small", "--seed", "7"],
            env,
            180,
            "seeding (label_backfill.dev.simulate)",
        )
        print(f"\n[ui] seeded in {time.monotonic() - t0:.1f} s: {out.strip().splitlines()[0] if out else ''}")
        t0 = time.monotonic()
        _run(["bash", "scripts/airflow.sh", "--background"], env, 200, "scripts/airflow.sh --background")
        airflow.password = (root / "stack" / "airflow-ui-password").read_text().strip()
        print(f"[ui] Airflow healthy at {airflow.url} in {time.monotonic() - t0:.1f} s (home {root})")
        yield airflow
    finally:
        pids = root / "stack" / "airflow.pids"
        try:
            subprocess.run(
                ["bash", "scripts/airflow.sh", "stop"], cwd=REPO, env=env, timeout=90, capture_output=True
            )
        except subprocess.TimeoutExpired:
            pass
        _kill_leftovers(pids)
        logs = ARTIFACTS / "logs" / request.module.__name__.rsplit(".", 1)[-1]
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True, exist_ok=True)
        for log in [*(root / "airflow" / "run").glob("*.log"), root / "stack" / "airflow.out"]:
            if log.exists():
                shutil.copy(log, logs / log.name)
        if (root / "airflow" / "logs").is_dir():  # the task logs: what a failed UI step hides
            shutil.copytree(root / "airflow" / "logs", logs / "tasks", dirs_exist_ok=True)
        try:
            subprocess.run(
                [sys.executable, "-m", "label_backfill.dev.stack", "clean"],  # as root: outside root
                cwd=REPO,
                env=env,
                timeout=60,
                capture_output=True,
            )
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(root, ignore_errors=True)
