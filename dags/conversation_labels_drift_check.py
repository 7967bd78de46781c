"""
### conversation_labels_drift_check

Every night (`$LABEL_BACKFILL_DRIFT_SCHEDULE`, default `0 4 * * *` UTC) compare each customer's ClickHouse
labels with Postgres, day by day. **Green means checked and equal.**

**Which days.** The `lookback_days` full UTC days (of conversation start) ending the day **before** the
run's logical date: the run of 2026-02-15 04:00 UTC checks 2026-02-08..2026-02-14 with the default 7.
Today is never checked (its conversations are still open). Rerunning a run checks the same days; a manual
run's logical date is when it was triggered, so it checks the days before that.

**Which customers.** `customers` as given (one per line), or every profile in Postgres when empty. Each
ends with one status: `clean`, `no_data` (0 rows on both sides: fails only when every checked customer has
none), `drift`, `invalid`, `no_profile`, `missing_database`, `error` or `not_checked`. `check_window`
first refuses conf keys and values this DAG does not accept (nothing is read before).

**Failing.** `alert`, the last task, fails on anything but `clean` / `no_data`, naming each customer with
its status and drifted day ranges and the report's URL, and sends the deployment's alert (e-mail, Slack).

**Repairs.** With *Auto repair*, each drifted range (oldest first, at most *Repair budget* days per
customer) is handed to ONE `conversation_labels_fleet_backfill` run, which repairs the customers in parallel
(one `conversation_labels_backfill` run each; a customer another run is repairing waits for it).

**Report.** `$LABEL_BACKFILL_REPORT_DIR/conversation_labels_drift_check/`, named after the run id, JSON and
markdown: drifted customers first, per day `pg_eligible`, `ch_rows`, `duplicates`, `missing`, `extra`,
`stale` and a sample of drifted conversations with both sides' labels.

**Without a log.** Each `check_customer` instance is named by its outcome (`alaska-air · DRIFT
2026-02-03..2026-02-04 (stale 120)`, `horizon-air · clean`) and ends red unless its customer is clean or
has no data (its result still reaches the report and the repairs); `report` is named by the night's summary
(drifted customers with their day ranges first), and its asset event carries the same as JSON.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Asset, Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from label_backfill import alerts, drift, proof
from label_backfill import settings as lb_settings
from label_backfill.params import (
    DRIFT_DEFAULTS,
    DRIFT_SAMPLE_SIZE,
    LOOKBACK_DAYS,
    MAX_REPAIR_DAYS,
    SECTION_ESSENTIALS,
    SECTION_GUARDS,
    SECTION_TUNING,
    flag,
    refuse_unknown_keys,
    with_defaults,
)
from label_backfill.sides import Sides

SETTINGS = lb_settings.load()
SIDES = Sides.of(SETTINGS)
ALERT = alerts.on_failure(SETTINGS, lb_settings.DRIFT_DAG_ID)  # the deployment's notifiers ([] when none)
log = logging.getLogger(__name__)
NOT_CHECKED = "not_checked"  # XCom key: why a task could not list anything to check (read by ``report``)
# Each night's drift report: an event per run, extra = the window, drifted customers and their day ranges.
DRIFT_REPORT = Asset(
    name="conversation_labels_drift_report",
    uri="x-label-backfill://reports/conversation_labels_drift_check",
    group="label-backfill",
)


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
        # Run Parameters (open when the form opens)
        "customers": Param(
            DRIFT_DEFAULTS["customers"],
            type=["array", "null"],
            items={"type": "string"},
            title="Customers",
            description="customer_ids to check, one per line; empty: every profile in Postgres.",
            section=SECTION_ESSENTIALS,
        ),
        "lookback_days": LOOKBACK_DAYS.param(
            DRIFT_DEFAULTS["lookback_days"],
            title="Lookback days",
            description="How many full UTC days are checked, ending the day before the run's logical date "
            "(the 2026-02-15 04:00 run checks 2026-02-08..2026-02-14 with 7; a manual run checks the days "
            "before it was triggered; today is never checked).",
            section=SECTION_ESSENTIALS,
        ),
        "auto_repair": flag(
            DRIFT_DEFAULTS["auto_repair"],
            title="Auto repair",
            description="Trigger conversation_labels_backfill for each drifted range (not while one is queued "
            "or running).",
            section=SECTION_ESSENTIALS,
        ),
        # Safety guards
        "max_repair_days": MAX_REPAIR_DAYS.param(
            DRIFT_DEFAULTS["max_repair_days"],
            title="Repair budget (days)",
            description="At most this many days repaired per customer per night (oldest drift first).",
            section=SECTION_GUARDS,
        ),
        # Tuning
        "sample_size": DRIFT_SAMPLE_SIZE.param(
            DRIFT_DEFAULTS["sample_size"],
            title="Drift sample",
            description="Drifted conversations listed per day, with both sides' labels.",
            section=SECTION_TUNING,
        ),
    },
)
def conversation_labels_drift_check() -> None:
    @task(multiple_outputs=True)
    def check_window() -> dict:
        """The days to check: from the run's logical date, so a rerun or a backfilled night checks the same.

        First task: refuses conf keys the DAG does not define (a typo would silently run with the default)
        before anything touches a database. The refusal is pushed for ``report``."""
        from label_backfill.naming import InvalidInput

        ctx = get_current_context()
        run = ctx["dag_run"]
        try:
            # ctx["dag"].params: the DAG's own params; ctx["params"] already holds the conf's unknown keys too
            refuse_unknown_keys(run.conf, ctx["dag"].params.keys())
            params = drift.check_params(ctx["params"])
            anchor = (run.logical_date or run.run_after).astimezone(dt.UTC).date()
            days = drift.lookback(anchor, params["lookback_days"])
        except InvalidInput as err:
            ctx["ti"].xcom_push(key=NOT_CHECKED, value=f"the run's params were refused: {err}")
            raise AirflowFailException(f"invalid input: {err}") from None
        return {"first": days.first.isoformat(), "last": days.last.isoformat()}

    @task
    def customers_to_check() -> list[str]:
        """The requested customers as given (each mapped check validates its own), else every profile.

        Fails when the profiles cannot be listed or there are none, pushing why for ``report``."""
        ctx = get_current_context()
        requested = with_defaults(ctx["params"], DRIFT_DEFAULTS)["customers"]
        if requested:
            return drift.select_customers(requested, [])
        try:
            with SIDES.postgres() as postgres:
                profiles = postgres.customers()
        except Exception as err:
            ctx["ti"].xcom_push(key=NOT_CHECKED, value=f"listing the customers failed: {drift.one_line(err)}")
            raise
        if not profiles:
            ctx["ti"].xcom_push(key=NOT_CHECKED, value="Postgres has no profiles")
            raise AirflowFailException("no customer to check: Postgres has no profiles")
        return drift.select_customers(None, profiles)

    @task(
        map_index_template="{{ customer_label | default(task.op_kwargs['customer']) }}",
        max_active_tis_per_dagrun=4,
    )
    def check_customer(customer: str, first: str, last: str) -> dict:
        """One customer; an invalid id or region, a missing profile or database, an unreachable database is
        this customer's result (``drift.check_customer``), never a crash that hides it or the others.

        Named by its outcome in the run's task list: ``alaska-air · DRIFT 2026-02-03..2026-02-04 (...)``,
        ``horizon-air · clean`` (just the customer if the task died before a result). Green means checked
        and equal: a customer whose result fails the run (``drift.fails_run``: drift, error, ...) ends red,
        its result pushed first as the return value, so ``plan_repairs`` and ``report`` still get it."""
        ctx = get_current_context()
        ctx["customer_label"] = customer  # type: ignore[typeddict-unknown-key]  (map_index_template)
        result = drift.check(customer, first, last, ctx["params"], SIDES)
        ctx["customer_label"] = proof.customer_label(result)  # type: ignore[typeddict-unknown-key]
        if drift.fails_run(result["status"]):
            ctx["ti"].xcom_push(key="return_value", value=result)  # what a success would have returned
            raise AirflowFailException(f"label drift: {ctx['customer_label']}")
        return result

    @task(trigger_rule="all_done")
    def plan_repairs(results: list[dict]) -> list[dict]:
        """The night's drifted ranges handed to ONE fleet run (its TriggerDagRunOperator kwargs: a list of
        one, or none); the ranges (XCom ``ranges``) and the why (``note``) go to the report.

        ``all_done``: a customer whose check failed must not stop the others' repairs (Airflow hands over the
        results that exist). A customer a backfill is already repairing is not skipped: its fleet run waits
        for that customer's lease."""
        ctx = get_current_context()
        params, ti = with_defaults(ctx["params"], DRIFT_DEFAULTS), ctx["ti"]
        handover: list[dict] = []
        ranges: list[dict] = []
        if not params["auto_repair"]:
            note = "auto_repair is off: nothing triggered."
        else:
            repairs = drift.plan_repairs(list(results or []), params["max_repair_days"], ctx["run_id"])
            if repairs:
                kwargs, ranges = drift.fleet_handover(repairs, ctx["run_id"])
                handover = [kwargs]
                note = (
                    f"{len(ranges)} range(s) handed to {lb_settings.FLEET_DAG_ID} run {kwargs['trigger_run_id']} "
                    f"(one {lb_settings.BACKFILL_DAG_ID} run each)."
                )
            else:
                note = "nothing to repair."
        ti.xcom_push(key="note", value=note)
        ti.xcom_push(key="ranges", value=ranges)
        return handover

    @task(
        trigger_rule="all_done",
        on_failure_callback=ALERT,  # no report written: alert is never reached
        outlets=[DRIFT_REPORT],
        map_index_template="{{ drift_summary | default('') }}",
    )
    def report(results: list[dict], handover: list[dict]) -> dict:
        """Always runs. Every listed customer gets a line (``not_checked`` when its task left no result);
        when nobody could be checked, the report says so and why. Named by the night's summary (drifted
        customers with their day ranges); its asset event's extra holds the same."""
        from label_backfill.naming import DayRange
        from label_backfill.reports import report_url, write_report

        ctx = get_current_context()
        ti = ctx["ti"]
        first = ti.xcom_pull(task_ids="check_window", key="first")
        last = ti.xcom_pull(task_ids="check_window", key="last")
        days = DayRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last)) if first and last else None
        listed = ti.xcom_pull(task_ids="customers_to_check")
        reason = drift.not_checked_reason(
            days,
            ti.xcom_pull(task_ids="check_window", key=NOT_CHECKED),
            listed,
            ti.xcom_pull(task_ids="customers_to_check", key=NOT_CHECKED),
        )
        found = [] if reason else drift.reconcile(list(listed), list(results or []))
        note = ti.xcom_pull(task_ids="plan_repairs", key="note") or "repairs were not planned."
        repairs = ti.xcom_pull(task_ids="plan_repairs", key="ranges") or []
        document = drift.report_document(found, days, ctx["run_id"], list(repairs), note, reason)
        markdown = drift.render_markdown(document)
        path = report_url(SETTINGS.report_dir, lb_settings.DRIFT_DAG_ID, ctx["run_id"])
        ctx["drift_summary"] = proof.drift_summary(document)  # type: ignore[typeddict-unknown-key]
        try:
            write_report(
                SETTINGS.report_dir,
                lb_settings.DRIFT_DAG_ID,
                ctx["run_id"],
                document,
                markdown,
                SETTINGS.report_conn_id,
            )
        finally:
            log.info("report %s:\n%s", path, markdown)
        ctx["outlet_events"][DRIFT_REPORT].extra = proof.drift_event_extra(document, path)
        return {"report": path, "problems": document["problems"]}

    @task(retries=0, on_failure_callback=ALERT)
    def alert(summary: dict) -> None:
        """The run's last task: fails on any drift and on anything not checked, so Airflow's ordinary
        alerting fires; names every failing customer with its status and reason, and the report."""
        if summary["problems"]:
            raise AirflowFailException(
                "label drift: " + "; ".join(summary["problems"]) + f" (report {summary['report']})"
            )

    window = check_window()
    listed = customers_to_check()
    window >> listed  # nothing reads a database before the conf is accepted
    results = check_customer.partial(first=window["first"], last=window["last"]).expand(customer=listed)
    repairs = plan_repairs(results)
    trigger = TriggerDagRunOperator.partial(
        task_id="trigger_repairs",
        trigger_dag_id=lb_settings.FLEET_DAG_ID,
        skip_when_already_exists=True,
        wait_for_completion=False,
        retries=0,
    ).expand_kwargs(repairs)
    summary = report(results, repairs)
    chain([window, listed], summary)
    chain(trigger, summary)
    alert(summary)


conversation_labels_drift_check()
