"""
### conversation_labels_fleet_backfill

Repair **many customers** over a UTC day range with one trigger: **validate -> plan every customer (a dry
run) -> the fleet plan -> one backfill run per drifted customer (at most *Customers at once*) -> the fleet's
verdict**.

**Dry run first (the default).** Trigger with *Dry run* on: `plan_customer` runs the backfill's own preflight
for each customer (nothing is deleted) and `fleet_plan` reports, per customer, the drifted days, the rows
ClickHouse would delete, the rows Postgres would rewrite and the guard's verdict, with fleet totals (its name
in the task list, and the report). Read it, then trigger again with *Dry run* off.

**Which customers.** *Customers* (one per line), or *Every customer* (every profile in Postgres: never the
default), over *First day*..*Last day* (UTC days of conversation start, inclusive). Automation (the drift
check) may send `repairs` instead: a list of `{customer, start_date, end_date}`.

**The repair.** Each customer the plan found drifted (and the guard accepted) gets one ordinary
`conversation_labels_backfill` run (`repair` instance named by the customer; its *Triggered DAG* link opens
it), with the fleet's guards. Customers already equal to Postgres are `EXACT` without a run; customers the
guard refused are `REFUSED` and never deleted. Two runs never repair one customer at once (a lease per
customer: a run of that customer started elsewhere makes this one wait).

**Verdict.** `fleet_verdict` lists every customer as `EXACT`, `NOT EXACT`, `REFUSED` or `FAILED` with its
backfill run and report, and fails unless all are `EXACT` (a dry run: unless all were checked).

**Rerun.** *Failed customers*: select their failed `repair` instances, **Clear** (with downstream): each
failed backfill run is run again whole; one that succeeded since is adopted. *One failed day*: open the
customer's backfill run (the `repair` instance's *Triggered DAG* link), clear that `label_day` with
downstream as usual; then clear `fleet_verdict` here to refresh the fleet's verdict.

**Report.** `$LABEL_BACKFILL_REPORT_DIR/conversation_labels_fleet_backfill/`, named after the run id (JSON:
`verdict`, `counts`, `totals`, `plans`, `customers`), and each customer's backfill report as usual.
"""

from __future__ import annotations

import datetime as dt
import logging

from airflow.sdk import Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from label_backfill import alerts, fleet
from label_backfill import settings as lb_settings
from label_backfill.naming import InvalidInput
from label_backfill.operators import CustomerRepairOperator
from label_backfill.params import (
    BACKFILL_SAMPLE_SIZE,
    FLEET_DEFAULTS,
    MAX_DAYS,
    MAX_PARALLEL_CUSTOMERS,
    MAX_PARALLEL_CUSTOMERS_LIMIT,
    MAX_PARALLEL_DAYS,
    MIN_DELETE_RATIO,
    SECTION_ESSENTIALS,
    SECTION_GUARDS,
    SECTION_TUNING,
    flag,
    refuse_unknown_keys,
)
from label_backfill.sides import Sides

SETTINGS = lb_settings.load()
SIDES = Sides.of(SETTINGS)
ALERT = alerts.on_failure(SETTINGS, lb_settings.FLEET_DAG_ID)
REFUSED = "refused"  # XCom key: why validate refused the run (read by fleet_verdict)
log = logging.getLogger(__name__)


@dag(
    dag_id=lb_settings.FLEET_DAG_ID,
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=4,  # fleets may overlap: the customer leases keep their backfill runs apart
    doc_md=__doc__,
    tags=["label-backfill", "clickhouse", "fleet"],
    default_args={
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=SETTINGS.retry_delay_seconds),
        "execution_timeout": dt.timedelta(hours=2),
    },
    params={
        "customers": Param(
            FLEET_DEFAULTS["customers"],
            type=["array", "null"],
            items={"type": "string"},
            title="Customers",
            description="customer_ids to repair, one per line (or tick Every customer).",
            section=SECTION_ESSENTIALS,
        ),
        "all_customers": flag(
            FLEET_DEFAULTS["all_customers"],
            title="Every customer",
            description="Every profile in Postgres, instead of a list. Never the default.",
            section=SECTION_ESSENTIALS,
        ),
        "start_date": Param(
            FLEET_DEFAULTS["start_date"],
            type=["string", "null"],
            format="date",
            title="First day (UTC, inclusive)",
            description="UTC day of conversation start, inclusive: the first day repaired, for every customer.",
            section=SECTION_ESSENTIALS,
        ),
        "end_date": Param(
            FLEET_DEFAULTS["end_date"],
            type=["string", "null"],
            format="date",
            title="Last day (UTC, inclusive)",
            description="UTC day of conversation start, inclusive: the last day repaired. Before today.",
            section=SECTION_ESSENTIALS,
        ),
        "dry_run": flag(
            FLEET_DEFAULTS["dry_run"],
            title="Dry run (plan only)",
            description="On (the default): plan every customer and report; change nothing. Off: repair.",
            section=SECTION_ESSENTIALS,
        ),
        "max_days": MAX_DAYS.param(
            FLEET_DEFAULTS["max_days"],
            title="Maximum range (days)",
            description="Refuse ranges longer than this many days (a typo guard; 2026 to date: raise it).",
            section=SECTION_GUARDS,
        ),
        "allow_empty_source": flag(
            FLEET_DEFAULTS["allow_empty_source"],
            title="Allow days Postgres reports empty",
            description="As in conversation_labels_backfill, for every customer.",
            section=SECTION_GUARDS,
        ),
        "max_delete_ratio": Param(
            FLEET_DEFAULTS["max_delete_ratio"],
            type=["number", "null"],
            title="Loss guard",
            description=f"As in conversation_labels_backfill, for every customer. At least {MIN_DELETE_RATIO}.",
            section=SECTION_GUARDS,
        ),
        "max_parallel_customers": MAX_PARALLEL_CUSTOMERS.param(
            FLEET_DEFAULTS["max_parallel_customers"],
            title="Customers at once",
            description="How many customers' backfill runs work at the same time.",
            section=SECTION_TUNING,
        ),
        "max_parallel_days": MAX_PARALLEL_DAYS.param(
            FLEET_DEFAULTS["max_parallel_days"],
            title="Days at once (per customer)",
            description="How many day jobs each customer's run works on at the same time.",
            section=SECTION_TUNING,
        ),
        "sample_size": BACKFILL_SAMPLE_SIZE.param(
            FLEET_DEFAULTS["sample_size"],
            title="Drift sample",
            description="Drifted conversations shown per day in each customer's report.",
            section=SECTION_TUNING,
        ),
        "repairs": Param(
            FLEET_DEFAULTS["repairs"],
            type=["array", "null"],
            items={"type": "object"},
            title="Ranges (automation)",
            description="Instead of Customers and the days: a list of {customer, start_date, end_date} "
            "(the drift check's hand-over).",
            section=SECTION_TUNING,
        ),
    },
)
def conversation_labels_fleet_backfill() -> None:
    @task(retries=0)
    def validate() -> dict:
        """Every param (each customer-range as its backfill run will check it), then the profiles for
        *Every customer*; nothing is read from the tables before this passes."""
        ctx = get_current_context()
        try:
            refuse_unknown_keys(ctx["dag_run"].conf, ctx["dag"].params.keys())
            today = dt.datetime.now(dt.UTC).date()
            validated = fleet.validate(ctx["params"], today)
            if validated["all_customers"]:
                with SIDES.postgres() as postgres:
                    customers = sorted({c for c, _ in postgres.customers()})
                if not customers:
                    raise InvalidInput("all_customers: Postgres has no profiles")
                span = {"start_date": validated["start_date"], "end_date": validated["end_date"]}
                validated["repairs"] = fleet.check_repairs(
                    [{"customer": c, **span} for c in customers], validated["child_params"], today
                )
        except InvalidInput as err:
            ctx["ti"].xcom_push(key=REFUSED, value=f"invalid input: {err}")
            raise AirflowFailException(f"invalid input: {err}") from None
        log.info("%s customer range(s): %s", len(validated["repairs"]), validated["repairs"])
        return validated

    @task
    def customer_ranges(validated: dict) -> list[dict]:
        return validated["repairs"]

    @task(
        map_index_template="{{ fleet_label | default(task.op_kwargs['repair']['customer']) }}",
        max_active_tis_per_dagrun=4,
        retries=1,
    )
    def plan_customer(repair: dict, validated: dict) -> dict:
        """One customer's dry run (the backfill's preflight); red when it could not be checked or the
        guard refuses it, its plan pushed first so the fleet plan and verdict still get it."""
        ctx = get_current_context()
        found = fleet.plan_repair(repair, validated["child_params"], SIDES, dt.datetime.now(dt.UTC).date())
        label = f"{found['customer']} · {found['status']}"
        if found["status"] != fleet.PLAN_ERROR:
            label += f" · {len(found['drifted_days'])} drifted day(s), delete {found['delete_rows']:,}"
        ctx["fleet_label"] = label  # type: ignore[typeddict-unknown-key]  (map_index_template)
        if found["status"] in (fleet.PLAN_ERROR, fleet.PLAN_REFUSED):
            ctx["ti"].xcom_push(key="return_value", value=found)
            raise AirflowFailException(f"{label}: {found['error'] or ' '.join(found['problems'])}")
        return found

    @task(trigger_rule="all_done", map_index_template="{{ fleet_label | default('') }}")
    def fleet_plan(validated: dict, plans: list[dict]) -> list[dict]:
        """The fleet's plan (report + label); returns the repairs to trigger (none for a dry run)."""
        ctx = get_current_context()
        plans = [p for p in (plans or []) if p]
        ctx["fleet_label"] = fleet.plan_line(plans, validated["dry_run"])  # type: ignore[typeddict-unknown-key]
        doc = fleet.document(ctx["run_id"], {**validated, "dry_run": True}, plans, [])
        log.info("%s\n%s", ctx["fleet_label"], fleet.render_markdown(doc))
        if validated["dry_run"]:
            return []
        return [
            {
                "customer": p["customer"],
                "trigger_run_id": fleet.child_run_id(ctx["run_id"], p),
                "conf": fleet.child_conf(
                    {k: p[k] for k in ("customer", "start_date", "end_date")}, validated["child_params"]
                ),
                "max_parallel_customers": validated["max_parallel_customers"],
            }
            for p in fleet.to_repair(plans)
        ]

    @task(
        trigger_rule="all_done",
        retries=1,
        on_failure_callback=ALERT,
        map_index_template="{{ fleet_label | default('') }}",
    )
    def fleet_verdict() -> dict:
        """Every customer's verdict, read from its backfill run and report now (so clearing this task after
        a day was rerun in a customer's run refreshes it); fails unless every customer is EXACT."""
        from label_backfill.reports import report_url, write_report

        ctx = get_current_context()
        ti = ctx["ti"]
        validated = ti.xcom_pull(task_ids="validate")
        if not validated:
            why = ti.xcom_pull(task_ids="validate", key=REFUSED) or "validate did not succeed"
            ctx["fleet_label"] = "FAILED · nothing read or deleted"  # type: ignore[typeddict-unknown-key]
            raise AirflowFailException(f"nothing was read or deleted: {why}")
        plans = [p for p in (ti.xcom_pull(task_ids="plan_customer") or []) if p]
        planned = {p["customer"] + p["start_date"] for p in plans}
        plans += [  # a customer whose plan task died without a result
            fleet.not_checked(r, "its plan_customer task left no result")
            for r in validated["repairs"]
            if r["customer"] + r["start_date"] not in planned
        ]
        verdicts = []
        for plan in plans:
            child = None
            if plan["status"] == fleet.PLAN_REPAIR and not validated["dry_run"]:
                run_id = fleet.child_run_id(ctx["run_id"], plan)
                if ti.get_dr_count(dag_id=lb_settings.BACKFILL_DAG_ID, run_ids=[run_id]):
                    state = ti.get_dagrun_state(lb_settings.BACKFILL_DAG_ID, run_id)
                    url, report = fleet.child_report_of(SETTINGS.report_dir, run_id, SETTINGS.report_conn_id)
                    child = {
                        "run_id": run_id,
                        "state": str(getattr(state, "value", state)),
                        "report": report,
                        "report_url": url if report else None,
                    }
            verdicts.append(fleet.verdict(plan, validated["dry_run"], child))
        doc = fleet.document(ctx["run_id"], validated, plans, verdicts)
        markdown = fleet.render_markdown(doc)
        ctx["fleet_label"] = fleet.summary_line(doc)  # type: ignore[typeddict-unknown-key]
        path = report_url(SETTINGS.report_dir, lb_settings.FLEET_DAG_ID, ctx["run_id"])
        try:
            write_report(
                SETTINGS.report_dir,
                lb_settings.FLEET_DAG_ID,
                ctx["run_id"],
                doc,
                markdown,
                SETTINGS.report_conn_id,
            )
        finally:
            log.info("fleet report %s:\n%s", path, markdown)
        for v in doc["customers"]:
            log.info("%-24s %s..%s  %-10s %s %s", v["customer"], v["start_date"], v["end_date"], v["verdict"],
                     v["report"] or "", v["why"])  # fmt: skip
        if not doc["ok"]:
            bad = [f"{v['customer']} {v['verdict']}" for v in doc["customers"] if v["verdict"] != fleet.EXACT]
            raise AirflowFailException(f"fleet {doc['verdict']}: {', '.join(bad)} (report {path})")
        return {"report": path, "verdict": doc["verdict"], "counts": doc["counts"]}

    validated = validate()
    plans = plan_customer.partial(validated=validated).expand(repair=customer_ranges(validated))
    to_repair = fleet_plan(validated, plans)
    repair = CustomerRepairOperator.partial(
        task_id="repair",
        trigger_dag_id=lb_settings.BACKFILL_DAG_ID,
        map_index_template="{{ task.customer }}",
        # a hard cap fixed at parse time; the run's max_parallel_customers is applied by the repair's turn
        max_active_tis_per_dagrun=MAX_PARALLEL_CUSTOMERS_LIMIT,
        poke_interval=10,
        retries=0,  # a failed customer is rerun deliberately (Clear), never behind the user's back
        execution_timeout=dt.timedelta(hours=48),  # mostly deferred while its backfill run works
    ).expand_kwargs(to_repair)
    chain(to_repair, repair, fleet_verdict())


conversation_labels_fleet_backfill()
