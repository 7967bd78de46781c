"""What the browser tests share: waits tied to states, the login, the REST reads.

Nothing here imports label_backfill or chdb into the test process (chdb allows one process per data
directory: while Airflow runs, its task processes take turns per call through label_backfill.chdb_lock).
ClickHouse is read in a subprocess, through the same lock (``tests.airflow_instance.table_digest``).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

OPEN_DIALOG = "[role=dialog][data-state=open]"
# One generous bound for every browser wait (actions, navigations, expect): on a loaded 2-core machine the
# UI can take many seconds to render a state, and each wait ends as soon as its state is reached.
UI_TIMEOUT_MS = 90_000


def q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0) -> Any:
    """Call ``check()`` until it returns something truthy; fail naming ``what`` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(
                f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}", pytrace=False
            )
        time.sleep(interval)


def login(page: Any, airflow_ui: Any) -> str:
    """Log in through the form; return the API token (the UI's own cookie, else a fresh one)."""
    from playwright.sync_api import expect

    # wait for the form, not for a navigation: the app's own redirects may abort one (net::ERR_ABORTED)
    page.goto(f"{airflow_ui.url}/auth/login")
    expect(page.get_by_label("Username")).to_be_visible()
    page.get_by_label("Username").fill(airflow_ui.user)
    page.get_by_label("Password").fill(airflow_ui.password)
    page.get_by_role("button", name="Sign in").click()

    def token() -> str | None:
        return next((c["value"] for c in page.context.cookies() if c["name"] == "_token"), None)

    return wait_for("the login's token cookie", token, UI_TIMEOUT_MS / 1000, interval=0.5)


class Shots:
    """Screenshots into ``artifacts/ui/``, remembered for the test's summary."""

    def __init__(self, artifacts: Path) -> None:
        self.artifacts, self.taken = artifacts, []

    def __call__(self, target: Any, name: str) -> None:
        path = self.artifacts / name
        target.screenshot(path=str(path))
        self.taken.append(path)
        print(f"[ui] screenshot {path}")


def scheduler_saw(airflow_ui: Any, task_id: str, run_id: str, state: str) -> bool:
    """Whether the scheduler has processed the executor's event of ``task_id``'s process in ``run_id`` while
    the task was in ``state`` (its log line ``TaskInstance Finished: ... state=<state>, executor=...``)."""
    log = airflow_ui.root / "airflow" / "run" / "scheduler.log"
    if not log.exists():
        return False
    key = f"task_id={task_id}, run_id={run_id},"
    return any(
        "TaskInstance Finished:" in line and key in line and f", state={state}, " in line
        for line in log.read_text(errors="replace").splitlines()
    )
