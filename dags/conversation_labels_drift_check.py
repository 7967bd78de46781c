"""
### conversation_labels_drift_check

Every night (`$LABEL_BACKFILL_DRIFT_SCHEDULE`, default `0 4 * * *` UTC) compare each customer's ClickHouse
labels with Postgres over the `lookback_days` full UTC days ending the day before the run's logical date
(a rerun checks the same days; today's open conversations are never drift).

Per customer and day: Postgres eligible, ClickHouse rows, distinct, duplicates, missing, extra, stale, and
for a drifted day a sample of conversations with both sides' labels. Clean days cost two aggregate queries.
Report: `$LABEL_BACKFILL_REPORT_DIR/conversation_labels_drift_check/<run_id>.json` and `.md`.

`alert` fails when anything drifted, naming customers and days, so failure callbacks, emails or Slack
hooks fire. With `auto_repair`, drifted ranges are handed to `conversation_labels_backfill`.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from label_backfill import drift
from label_backfill import settings as lb_settings

SETTINGS = lb_settings.load()
log = logging.getLogger(__name__)


@dag(
    dag_id=lb_settings.DRIFT_DAG_ID,
    schedule=SETTINGS.drift_schedule,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["label-backfill", "clickhouse", "drift"],
    default_args={
        "retries": 1,
        "retry_delay": dt.timedelta(seconds=SETTINGS.retry_delay_seconds),
        "execution_timeout": dt.timedelta(hours=1),
    },
    params={
        "customers": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Customers",
            description="customer_ids to check; empty = every profile in Postgres.",
        ),
        "lookback_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=90,
            title="Lookback days",
            description="Full UTC days checked, ending the day before the run's logical date.",
        ),
        "auto_repair": Param(
            False,
            type="boolean",
            title="Auto repair",
            description="Trigger conversation_labels_backfill for each drifted range (not while one is queued "
            "or running).",
        ),
        "max_repair_days": Param(
            7,
            type="integer",
            minimum=1,
            maximum=62,
            title="Repair budget",
            description="At most this many days repaired per customer per night (oldest drift first).",
        ),
        "sample_size": Param(
            10,
            type="integer",
            minimum=0,
            maximum=200,
            title="Drift sample",
            description="Drifted conversations listed per day, with both sides' labels.",
        ),
    },
)
def conversation_labels_drift_check() -> None:
    @task(multiple_outputs=True)
    def check_window() -> dict:
        """The days to check: from the run's logical date, so a rerun or a backfilled night checks the same."""
        ctx = get_current_context()
        run = ctx["dag_run"]
        anchor = (run.logical_date or run.run_after).astimezone(dt.UTC).date()
        days = drift.lookback(anchor, ctx["params"]["lookback_days"])
        return {"first": days.first.isoformat(), "last": days.last.isoformat()}

    @task
    def customers_to_check() -> list[str]:
        from label_backfill.hooks import postgres_side

        with postgres_side() as postgres:
            return drift.select_customers(get_current_context()["params"]["customers"], postgres.customers())

    @task(map_index_template="{{ customer }}", max_active_tis_per_dagrun=4)
    def check_customer(customer: str, first: str, last: str) -> dict:
        """One customer; a missing or unreachable database is a result, not a crash of the others."""
        from label_backfill.compare import ClickHouseSide, compare
        from label_backfill.hooks import clickhouse_client, postgres_side
        from label_backfill.naming import DayRange, database_name

        ctx = get_current_context()
        ctx["customer"] = customer  # type: ignore[typeddict-unknown-key]  (map_index_template)
        days = DayRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        with postgres_side() as postgres:
            region = postgres.region(customer)
            if region is None:
                return drift.customer_result(
                    customer, drift.STATUS_NO_PROFILE, error="no profile in Postgres"
                )
            clickhouse = ClickHouseSide(
                clickhouse_client(), database_name(customer, region), SETTINGS.read_table
            )
            try:
                if not clickhouse.exists():
                    return drift.customer_result(
                        customer,
                        drift.STATUS_NO_DATABASE,
                        error=f"no table {clickhouse.database}.{clickhouse.table}",
                    )
                result = compare(
                    postgres, clickhouse, customer, days, sample_size=ctx["params"]["sample_size"]
                )
            except Exception as err:  # unreachable ClickHouse must not hide the other customers' results
                return drift.customer_result(
                    customer, drift.STATUS_ERROR, error=f"{type(err).__name__}: {err}"
                )
        log.info("%s:\n%s", customer, result.render_text())
        return drift.customer_result(
            customer, drift.STATUS_CLEAN if result.ok else drift.STATUS_DRIFT, result.to_dict()
        )

    @task
    def plan_repairs(results: list[dict]) -> list[dict]:
        """TriggerDagRunOperator kwargs, one per drifted range; the why goes to XCom ``note`` for the report."""
        ctx = get_current_context()
        params, ti = ctx["params"], ctx["ti"]
        repairs: list[dict] = []
        if not params["auto_repair"]:
            note = "auto_repair is off: nothing triggered."
        else:
            repairs = drift.plan_repairs(list(results), params["max_repair_days"], ctx["run_id"])
            busy = ti.get_dr_count(dag_id=lb_settings.BACKFILL_DAG_ID, states=["queued", "running"])
            if busy and repairs:
                note = (
                    f"{busy} {lb_settings.BACKFILL_DAG_ID} run(s) queued or running: nothing triggered tonight "
                    f"({len(repairs)} repair(s) left for the next check)."
                )
                repairs = []
            else:
                note = f"{len(repairs)} {lb_settings.BACKFILL_DAG_ID} run(s) triggered."
        ti.xcom_push(key="note", value=note)
        return repairs

    @task(trigger_rule="all_done")
    def report(results: list[dict], first: str, last: str, repairs: list[dict]) -> dict:
        from label_backfill.naming import DayRange
        from label_backfill.reports import write_report

        ctx = get_current_context()
        days = DayRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        note = ctx["ti"].xcom_pull(task_ids="plan_repairs", key="note") or "repairs were not planned."
        document = drift.report_document(list(results or []), days, ctx["run_id"], list(repairs or []), note)
        markdown = drift.render_markdown(document)
        path = write_report(SETTINGS.report_dir, lb_settings.DRIFT_DAG_ID, ctx["run_id"], document, markdown)
        log.info("report %s:\n%s", path, markdown)
        return {"report": str(path), "problems": document["problems"]}

    @task(retries=0)
    def alert(summary: dict) -> None:
        """The run's last task: fails on any drift so Airflow's ordinary alerting fires."""
        if summary["problems"]:
            raise AirflowFailException(
                "label drift: " + "; ".join(summary["problems"]) + f" (report {summary['report']})"
            )

    window = check_window()
    results = check_customer.partial(first=window["first"], last=window["last"]).expand(
        customer=customers_to_check()
    )
    repairs = plan_repairs(results)
    trigger = TriggerDagRunOperator.partial(
        task_id="trigger_repairs",
        trigger_dag_id=lb_settings.BACKFILL_DAG_ID,
        skip_when_already_exists=True,
        wait_for_completion=False,
        retries=0,
    ).expand_kwargs(repairs)
    summary = report(results, window["first"], window["last"], repairs)
    chain(trigger, summary)
    alert(summary)


conversation_labels_drift_check()
