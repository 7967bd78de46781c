"""Scheduler tests: the fleet and the customer leases under a real Airflow (scheduler, LocalExecutor,
triggerer, api-server: tests/airflow_instance.py), driven through its REST API
(``label_backfill.dev.airflow_api``).

They run only when asked for (``pytest -m scheduler tests/scheduler``, ``make test-scheduler``): a plain
``pytest`` (``make test``) reports them as skipped, because they start Airflow and take several minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from label_backfill.dev.airflow_api import AirflowApi

from tests.airflow_instance import (
    REPO,
    AirflowUnderTest,
    airflow_instance,
    run_on_stack,
    seed_small,
    skip_unless_selected,
    table_digest,
)

ARTIFACTS = REPO / "artifacts" / "scheduler"
REFUSED_CUSTOMER, REFUSED_DAY = "sun-country", "2026-02-05"  # Postgres lost this day: the guard refuses it
FAULT_DAY = "2026-02-03"  # its first attempt fails after a partial write, its retry succeeds
ENV = {
    "LABEL_BACKFILL_LOCAL_FAIL_DAYS": FAULT_DAY,
    "LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS": "1",
    "LABEL_BACKFILL_DAY_RETRIES": "1",
    "LABEL_BACKFILL_RETRY_DELAY_SECONDS": "2",
    # a waiting run notices the release within 20 s; a shorter poke loses Airflow's reschedule race on a busy
    # machine (apache/airflow#71172: the scheduler fails the sensor on every poke, retries or not)
    "LABEL_BACKFILL_LEASE_POKE_SECONDS": "20",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_unless_selected(
        config, items, "scheduler", "starts Airflow: run it with `pytest -m scheduler tests/scheduler`"
    )


@dataclass
class Scheduled:
    airflow: AirflowUnderTest
    api: AirflowApi
    refused_table_before: dict  # the refused customer's ClickHouse table before Airflow started


def _prepare(airflow: AirflowUnderTest) -> None:
    seed_small(airflow)
    deleted = run_on_stack(
        airflow,
        "import psycopg\n"
        "with psycopg.connect(stack.start_postgres()) as pg:\n"
        '    n = pg.execute("DELETE FROM conversations WHERE customer_id = %s AND "\n'
        "        \"(started_at AT TIME ZONE 'UTC')::date = %s\", (args[0], args[1])).rowcount\n"
        "print(json.dumps(n))\n",
        REFUSED_CUSTOMER,
        REFUSED_DAY,
    )
    assert deleted > 0


@pytest.fixture(scope="module")
def scheduled(request: pytest.FixtureRequest) -> Iterator[Scheduled]:
    """The small-scale incident with one customer's Postgres day lost, under one Airflow for the module."""
    before: dict = {}

    def prepare(airflow: AirflowUnderTest) -> None:
        _prepare(airflow)
        before.update(table_digest(airflow, "sun_country_us_east_1"))

    logs = ARTIFACTS / "logs" / request.module.__name__.rsplit(".", 1)[-1]
    with airflow_instance("scheduler", ENV, prepare, logs) as airflow:
        api = AirflowApi(airflow.url, airflow.user, airflow.password)
        for dag_id in ("conversation_labels_backfill", "conversation_labels_fleet_backfill"):
            api.unpause(dag_id)
        yield Scheduled(airflow, api, before)
