"""
### conversation_labels_backfill

Repair one customer's ClickHouse labels (`conversation_with_labels`) for a range of days so they equal
Postgres: **validate -> preflight (before snapshot + safety guard) -> [approval] -> delete -> wait for the
mutation -> one job per day -> verify**.

**The form.** *Run Parameters*: the customer (a profile's `customer_id`, e.g. `alaska-air`), the first and
last day (UTC days of conversation **start**, both **inclusive**; the last must be before today, which the
cron is still labeling), *Dry run* and *Ask for approval before deleting*. *Safety guards* and *Tuning* (closed) keep safe defaults; change
them only when a run was refused and the message says so. A bad value (a customer id, a number out of its
range, an unknown conf key) fails `validate` with a message naming it: nothing is read or deleted before.

**Approval (opt-in).** `require_approval` pauses the run before the delete: open `approve_delete` ->
**Required Actions**, read what will be deleted and rewritten, Approve or Reject. Reject (or no answer in
time) deletes nothing and ends the run with verdict `REJECTED`.

**The proof without a log.** The run's task list names `preflight`, `approve_delete` and `verify` by their
outcome (`EXACT · rows 7,612→7,480 · ...`); an exact repair emits an asset event whose extra carries the
customer, days, verdict and counts (the run's **Asset Events** tab).

**What it does.** `validate` checks every value and finds the customer's profile. `preflight` compares the
range with Postgres and **refuses** (report `REFUSED`, nothing deleted) when Postgres reports no
conversations for a day ClickHouse holds, a day would lose more than the loss guard allows, or a
conversation stored in the range now starts outside it (the message names the days to add). A dry run
stops there with its report (`DRY RUN`). Then the range is deleted, every day rewritten by the labeling job
(at most *Days at once*, earliest first), and `verify` compares again: the run is green only when every day
is exact (verdict `EXACT`); otherwise it fails naming the days (`NOT EXACT`, `NOT REPAIRED`, `NOT
VERIFIED`) and the deployment's alert is sent.

**A failed day.** In the grid, open the failed `label_day` (named by its date), **Clear** it with
**downstream**: the day deletes what its failed attempt wrote, is rewritten, and `verify` runs again.

**Report.** `verify` (or `preflight` for a dry run or a refusal) logs its URL: under
`$LABEL_BACKFILL_REPORT_DIR/conversation_labels_backfill/` (a folder or an object store), named after the
run id, as JSON (`verdict`, per day: `pg_eligible`, `ch_rows`, `duplicates`, `missing`, `extra`, `stale`,
`ok`; `problems`, `failed_days`) and markdown (before/after tables). One backfill runs at a time; more are
queued.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from label_backfill import alerts, backfill
from label_backfill import settings as lb_settings
from label_backfill.leases import state_leases
from label_backfill.naming import InvalidInput
from label_backfill.operators import (
    ClickHouseDeleteOperator,
    ClickHouseMutationSensor,
    CustomerLeaseSensor,
    DeleteApprovalOperator,
    hold_customer,
)
from label_backfill.params import (
    BACKFILL_DEFAULTS,
    BACKFILL_SAMPLE_SIZE,
    MAX_DAYS,
    MAX_PARALLEL_DAYS,
    MIN_DELETE_RATIO,
    SECTION_ESSENTIALS,
    SECTION_GUARDS,
    SECTION_TUNING,
    customer_param,
    flag,
    refuse_unknown_keys,
    require_approval_param,
)
from label_backfill.sides import Sides
from label_backfill.sql import SQL_DIR

SETTINGS = lb_settings.load()
SIDES = Sides.of(SETTINGS)
REFUSED = "refused"  # XCom key: why validate or preflight refused the run (read by verify)
# The table a proven repair updated: an EXACT verify emits an event; extra = customer, days, verdict, counts.
LABELS = Asset(
    name="conversation_with_labels",
    uri="x-label-backfill://clickhouse/conversation_with_labels",
    group="label-backfill",
)
PROOF = "backfill_proof"  # the context key a task fills with its label (rendered by map_index_template)
PROOF_TEMPLATE = "{{ backfill_proof | default('') }}"


def _report() -> backfill.Report:
    return backfill.Report(SETTINGS.report_dir, get_current_context()["run_id"], SETTINGS.report_conn_id)


def _publish(outlet: Asset | None = None) -> backfill.Publish:
    """Show a task's outcome in the run's task list (its label) and on its outlet event (the extra)."""
    ctx = get_current_context()

    def publish(line: str, extra: dict | None) -> None:
        ctx[PROOF] = line  # type: ignore[literal-required]  (map_index_template)
        if outlet is not None and extra is not None:
            ctx["outlet_events"][outlet].extra = extra

    return publish


def _runner() -> tuple[type, dict]:
    """The day runner the deployment asks for, and its deployment settings (the rest are its defaults)."""
    common = {
        "cluster": SETTINGS.clickhouse_cluster,
        "mutation_timeout": SETTINGS.mutation_timeout_seconds,
        "clickhouse_conn_id": lb_settings.CLICKHOUSE_CONN_ID,
        "postgres_conn_id": lb_settings.POSTGRES_CONN_ID,
    }
    if SETTINGS.job_runner == "local":
        # the embedded stack's runner, loaded only when asked for (a setting: no I/O at parse time)
        from label_backfill.dev.local_runner import LabelDayLocalOperator

        # the rows a day wrote are in its log and the run's report: no XCom per day (~17 ms of Airflow's each)
        return LabelDayLocalOperator, {**common, "write_table": SETTINGS.read_table, "do_xcom_push": False}
    from label_backfill.k8s_day import LabelDayKubernetesOperator  # the Kubernetes client: only when used

    return LabelDayKubernetesOperator, {
        **common,
        "cronjob_name": SETTINGS.cronjob,
        "container_name": SETTINGS.k8s_container,
        "namespace": SETTINGS.k8s_namespace,
        "kubernetes_conn_id": lb_settings.KUBERNETES_CONN_ID,
        "deferrable": SETTINGS.deferrable,
        "job_poll_interval": SETTINGS.k8s_poll_seconds,
    }


@dag(
    dag_id=lb_settings.BACKFILL_DAG_ID,
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    # runs of different customers proceed at once; two runs of one customer never delete and rewrite under each
    # other: claim_customer (a lease per customer, label_backfill.leases) is the setup of every such task
    max_active_runs=SETTINGS.max_active_backfills,
    doc_md=__doc__,
    template_searchpath=[str(SQL_DIR)],
    tags=["label-backfill", "clickhouse"],
    default_args={
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=SETTINGS.retry_delay_seconds),
        "execution_timeout": dt.timedelta(hours=2),
    },
    params={
        # Run Parameters (open when the form opens): what to repair
        "customer": customer_param(
            description="A profile's customer_id in Postgres: lowercase letters, digits and '-', e.g. "
            "alaska-air."
        ),
        "start_date": Param(
            type="string",
            format="date",
            title="First day (UTC, inclusive)",
            description="UTC day of conversation start, inclusive: the first day repaired.",
            section=SECTION_ESSENTIALS,
        ),
        "end_date": Param(
            type="string",
            format="date",
            title="Last day (UTC, inclusive)",
            description="UTC day of conversation start, inclusive: the last day repaired. Before today "
            "(the cron is still labeling today).",
            section=SECTION_ESSENTIALS,
        ),
        "dry_run": flag(
            BACKFILL_DEFAULTS["dry_run"],
            title="Dry run",
            description="Compare and report what would be deleted and rewritten; change nothing.",
            section=SECTION_ESSENTIALS,
        ),
        # Safety guards: each refuses a run that looks wrong; change one only when a refusal says so
        "max_days": MAX_DAYS.param(
            BACKFILL_DEFAULTS["max_days"],
            title="Maximum range (days)",
            description="Refuse ranges longer than this many days (a typo guard).",
            section=SECTION_GUARDS,
        ),
        "allow_empty_source": flag(
            BACKFILL_DEFAULTS["allow_empty_source"],
            title="Allow days Postgres reports empty",
            description="Delete days where Postgres has no eligible conversations but ClickHouse has rows. "
            "Off by default: a wrong customer or an outage looks exactly like this.",
            section=SECTION_GUARDS,
        ),
        "max_delete_ratio": Param(
            BACKFILL_DEFAULTS["max_delete_ratio"],
            type=["number", "null"],
            title="Loss guard",
            description="Refuse a day when ClickHouse holds more than this many times the conversations it "
            "keeps after the repair (2.0: more than half of the day's conversations would be lost because "
            f"Postgres no longer has them). Duplicate rows are never counted as loss. At least "
            f"{MIN_DELETE_RATIO}; default {BACKFILL_DEFAULTS['max_delete_ratio']}.",
            section=SECTION_GUARDS,
        ),
        # Tuning
        "max_parallel_days": MAX_PARALLEL_DAYS.param(
            BACKFILL_DEFAULTS["max_parallel_days"],
            title="Days at once",
            description="How many day jobs run at the same time.",
            section=SECTION_TUNING,
        ),
        "sample_size": BACKFILL_SAMPLE_SIZE.param(
            BACKFILL_DEFAULTS["sample_size"],
            title="Drift sample",
            description="Drifted conversations shown per day in the report, with both sides' labels.",
            section=SECTION_TUNING,
        ),
        "require_approval": require_approval_param(
            description="Pause after the preflight until someone approves the delete on the approve_delete "
            "task's Required Actions page, which shows the rows ClickHouse will delete, the rows Postgres will "
            "rewrite and the guard's findings. Reject, or no answer in time, deletes nothing (verdict "
            "REJECTED). Off: the run never waits for a person.",
        ),
    },
)
def conversation_labels_backfill() -> None:
    @task(retries=0)
    def validate() -> dict:
        """Every param, then the profile lookup; nothing is deleted before this passes."""
        ctx = get_current_context()
        try:
            refuse_unknown_keys(ctx["dag_run"].conf, ctx["dag"].params.keys())
            plan = backfill.validate_params(ctx["params"], dt.datetime.now(dt.UTC).date())
            with SIDES.postgres() as postgres:
                plan = backfill.resolve_customer(plan, postgres)
        except InvalidInput as err:
            ctx["ti"].xcom_push(key=REFUSED, value=f"invalid input: {err}")  # for verify's message and alert
            raise AirflowFailException(f"invalid input: {err}") from None
        return plan.to_dict()

    @task(multiple_outputs=True, map_index_template=PROOF_TEMPLATE)
    def preflight(plan_dict: dict) -> dict:
        """Before snapshot and the range's edge; refuse the delete when it is unsafe; a dry run reports here."""
        plan = backfill.BackfillPlan.from_dict(plan_dict)
        try:
            return backfill.preflight(plan, SIDES, _report(), dt.datetime.now(dt.UTC).date(), _publish())
        except backfill.TaskFailed as err:
            get_current_context()["ti"].xcom_push(key=REFUSED, value=str(err))
            raise AirflowFailException(str(err)) from None

    @task
    def release_customer() -> None:
        """Teardown of ``claim_customer``: give the customer back, whatever happened in between."""
        ti = get_current_context()["ti"]
        plan_dict = ti.xcom_pull(task_ids="validate")
        if plan_dict and not plan_dict["dry_run"]:
            state_leases().release(plan_dict["customer"], ti.dag_id, ti.run_id)

    @task.short_circuit
    def repair_requested(plan_dict: dict) -> bool:
        return not plan_dict["dry_run"]

    @task
    def plan_days(plan_dict: dict) -> list[dict]:
        return backfill.day_job_kwargs(backfill.BackfillPlan.from_dict(plan_dict))

    @task(
        trigger_rule="all_done",
        retries=2,
        retry_delay=dt.timedelta(seconds=SETTINGS.retry_delay_seconds),
        # runs (all_done) and fails whenever the run went wrong, refusals included: one alert per failed run
        on_failure_callback=alerts.on_failure(SETTINGS, lb_settings.BACKFILL_DAG_ID),
        outlets=[LABELS],
        map_index_template=PROOF_TEMPLATE,
    )
    def verify() -> dict:
        """After snapshot against Postgres; the run fails on any drift, failed day or unchecked state.

        Always leaves a report once a delete may have happened: EXACT, NOT EXACT, REJECTED (the approval
        was refused: nothing deleted), NOT REPAIRED (stopped before rewriting, our queued delete killed) or
        NOT VERIFIED (Postgres could not be compared). Its label is the verdict with the before -> after
        table; an EXACT run emits the LABELS asset event.
        """
        ti = get_current_context()["ti"]
        try:
            return backfill.verify(
                ti.xcom_pull(task_ids="validate"),
                ti.xcom_pull(task_ids="preflight"),
                ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {}),
                (ti.xcom_pull(task_ids="delete_range") or {}).get("mutations"),
                SIDES,
                _report(),
                {
                    t: ti.xcom_pull(task_ids=t, key=REFUSED)
                    for t in ("validate", "claim_customer", "preflight")
                },
                decision=ti.xcom_pull(task_ids="approve_delete", key="decision"),
                publish=_publish(LABELS),
            )
        except backfill.TaskFailed as err:
            raise AirflowFailException(str(err)) from None

    plan = validate()
    claim = CustomerLeaseSensor(
        task_id="claim_customer",
        lease_wait=SETTINGS.lease_wait_seconds,
        poke_interval=SETTINGS.lease_poke_seconds,
        # the refusal after lease_wait is final (AirflowFailException: no retry); a retry covers Airflow's race
        # that fails a reschedule-mode sensor whose previous poke's executor event arrives after the next poke
        # was queued (apache/airflow#71172, seen here under load with a 2 s poke: "finished with state
        # success, but the task instance's state attribute is queued")
        retries=2,
        # a failed setup stops its whole scope, verify included: the refusal's alert is sent from here
        on_failure_callback=alerts.on_failure(SETTINGS, lb_settings.BACKFILL_DAG_ID),
    )
    found = preflight(plan)
    go = repair_requested(plan)
    approve = DeleteApprovalOperator(
        task_id="approve_delete",
        response_timeout=dt.timedelta(seconds=SETTINGS.approval_timeout_seconds),
        # a retry asks again (label "waiting for approval (asked again)"): Airflow 3.3.2 can fail the task when
        # an answer comes within seconds of the request (see DeleteApprovalOperator); a failed gate deletes nothing
        retries=1,
    )
    delete = ClickHouseDeleteOperator(
        task_id="delete_range",
        customer=plan["customer"],
        database=plan["database"],
        first_day=plan["start_date"],
        last_day=plan["end_date"],
        conversation_ids=found["delete_ids"],
        cluster=SETTINGS.clickhouse_cluster,
        retries=0,  # a second delete of the same range is harmless but must be a deliberate clear
        pre_execute=hold_customer,
    )
    wait = ClickHouseMutationSensor(
        task_id="wait_for_mutations",
        database=plan["database"],
        mutations=delete.output,
        cluster=SETTINGS.clickhouse_cluster,
        deferrable=SETTINGS.deferrable,
        poke_interval=2,
        timeout=SETTINGS.mutation_timeout_seconds,
        retries=0,
    )
    operator, runner_kwargs = _runner()
    days = operator.partial(
        task_id="label_day",
        map_index_template="{{ task.day }}",
        # a hard cap fixed at parse time; the run's max_parallel_days is applied by the day's gate
        # (DayRewriteOperator.wait_for_turn: Airflow has no per-run value for this)
        max_active_tis_per_dagrun=backfill.MAX_PARALLEL_DAYS_LIMIT,
        retries=SETTINGS.day_retries,
        pre_execute=hold_customer,
        **runner_kwargs,
    ).expand_kwargs(plan_days(plan))
    checked = verify()
    plan >> claim  # runs whatever validate did (all_done): without a plan it passes and verify reports why
    chain(claim, found, go, approve, delete, wait, days, checked)
    # the lease spans every task that deletes or rewrites; clearing one of them clears the claim and the release
    checked >> release_customer().as_teardown(setups=claim)


conversation_labels_backfill()
