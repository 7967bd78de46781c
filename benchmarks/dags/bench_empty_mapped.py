"""Bench only (``make bench``): what Airflow itself charges per mapped task under ``airflow dags test``.

49 mapped tasks that do nothing, like the backfill's 49 ``label_day``: the bench compares the two per-day
costs. Never in the deployment's dags folder: the bench points ``AIRFLOW__CORE__DAGS_FOLDER`` here for
this one phase.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, task

MAPPED = 49


@dag(
    dag_id="bench_empty_mapped",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["bench"],
)
def bench_empty_mapped() -> None:
    @task
    def days() -> list[int]:
        return list(range(MAPPED))

    @task
    def empty_day(day: int) -> None:
        """Nothing: the cost of this task is Airflow's alone."""

    empty_day.expand(day=days())


bench_empty_mapped()
