"""Operators of the backfill: thin, the I/O lives in ``LabelTable``, the hooks and the job.

- ``ClickHouseDeleteOperator`` starts the range delete and returns the mutations it created.
- ``ClickHouseMutationSensor`` waits for them on every replica (reschedule mode, or deferrable).
- ``CustomerLeaseSensor`` claims the run's customer (one run at a time per customer); ``hold_customer``
  checks it is still held before a delete or a rewrite.
- ``CustomerRepairOperator`` is the fleet's repair of one customer: it triggers that customer's backfill run
  and waits for it.
- ``DeleteApprovalOperator`` asks a person to approve the delete (Airflow's human-in-the-loop), when the run
  asks for it.
- ``DayRewriteOperator`` is the base of the day runners, which rewrite one UTC day: each first waits for
  its turn (``max_parallel_days``) and deletes whatever an earlier attempt of the day left behind, so a
  retried or cleared day ends exact. ``LabelDayKubernetesOperator`` runs the day as a Kubernetes Job (defined
  in ``label_backfill.k8s_day``, loaded on first use: the Kubernetes client costs ~1 s of imports); the
  embedded stack's ``label_backfill.dev.local_runner.LabelDayLocalOperator`` runs the job in the worker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, TaskDeferred

from label_backfill.approval import approval_request
from label_backfill.backfill import day_job_env
from label_backfill.chdb_lock import held
from label_backfill.clickhouse import LabelTable, MutationFailed, MutationState, check_mutations
from label_backfill.hooks import clickhouse_client, postgres_side
from label_backfill.leases import LeaseHeld, run_finished, state_leases
from label_backfill.naming import DayRange, parse_day
from label_backfill.proof import approval_decision, decision_label, decision_text, label
from label_backfill.settings import CLICKHOUSE_CONN_ID, POSTGRES_CONN_ID, STATE_CONN_ID
from label_backfill.triggers import ClickHouseMutationTrigger

log = logging.getLogger(__name__)

# Task states of a day that is done; in any other state (none, scheduled, queued, running, deferred,
# up_for_reschedule, up_for_retry...) a day is at work or still to come, and keeps its place in line.
FINISHED_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
# a day in these states is about to start (or to be picked up): the one behind it looks again soon
STARTING_STATES = frozenset({None, "none", "scheduled", "queued"})
_RESCHEDULE_SOON_SECONDS, _RESCHEDULE_SECONDS, _RESCHEDULE_MAX_SECONDS = 1, 3, 30


def days_ahead(states: dict[str, Any], task_id: str, map_index: int | None) -> dict[int, str | None]:
    """The days before ``map_index`` that are not finished, with their states (a day not reported is not
    finished).

    :param states: the run's states of ``task_id``, ``{"<task_id>_<map_index>": state}`` as
        ``get_task_states`` reports them.
    """
    ahead = {}
    for i in range(max(map_index or 0, 0)):
        state = states.get(f"{task_id}_{i}")
        state = getattr(state, "value", state)
        if state not in FINISHED_STATES:
            ahead[i] = state
    return ahead


def runs_one_task_at_a_time() -> bool:
    """Whether this task runs inside ``dag.test()``'s in-process loop (``airflow dags test`` without
    ``--use-executor``), which runs the run's tasks one after another in its own process: no other day of
    the run can be at work beside this one. Anything else (any executor, the real scheduler) is False.

    Why it matters: that loop tries the scheduled tasks in no particular order, so the day gate would send
    most days back to wait (an Airflow attempt each, ~3 per day at 49 days) for a limit that cannot be
    exceeded there.
    """
    try:  # Airflow 3.3 task SDK: dag.test() hands the task runner these in-process comms
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


class ClickHouseDeleteOperator(BaseOperator):
    """``ALTER TABLE <db>.conversation_with_labels [ON CLUSTER c] DELETE`` of one customer's start days.

    :param customer: the customer id (bound as a query parameter).
    :param database: the customer's database (validated identifier).
    :param first_day: first UTC start day, ``YYYY-MM-DD`` (inclusive).
    :param last_day: last UTC start day, ``YYYY-MM-DD`` (inclusive).
    :param conversation_ids: conversations also deleted outside the range (the preflight's ``delete_ids``:
        their only true place is inside it, or nowhere).
    :param cluster: cluster name for ``ON CLUSTER``, or None for a single node.
    :param clickhouse_conn_id: Airflow connection of ClickHouse.
    :return: ``{"mutations": [[host, mutation_id], ...]}`` for the sensor.
    """

    template_fields: Sequence[str] = ("customer", "database", "first_day", "last_day", "conversation_ids")

    def __init__(
        self,
        *,
        customer: str,
        database: str,
        first_day: str,
        last_day: str,
        conversation_ids: Any = (),
        cluster: str | None = None,
        clickhouse_conn_id: str = CLICKHOUSE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer, self.database = customer, database
        self.first_day, self.last_day = first_day, last_day
        self.conversation_ids = conversation_ids
        self.cluster = cluster
        self.clickhouse_conn_id = clickhouse_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        days = DayRange(parse_day(self.first_day, "start_date"), parse_day(self.last_day, "end_date"))
        table = LabelTable(clickhouse_client(self.clickhouse_conn_id), self.database, self.cluster)
        extra_ids = list(self.conversation_ids or ())
        mutations = table.delete_range(self.customer, days, extra_ids)
        self.log.info(
            "started %s mutation(s) deleting %s %s and %s conversation(s) stored outside it: %s",
            len(mutations),
            self.customer,
            days,
            len(extra_ids),
            mutations,
        )
        return {"mutations": [list(m) for m in mutations]}


class ClickHouseMutationSensor(BaseSensorOperator):
    """Wait until every watched mutation is done on every replica; fail at once if one has failed.

    Whenever it fails (a mutation ahead of ours failed, timeout, an error), it first kills our watched
    mutations that are not done, so no queued delete can empty the range after the run stopped.

    :param database: the customer's database.
    :param mutations: ``[[host, mutation_id], ...]`` from ``ClickHouseDeleteOperator``.
    :param cluster: cluster name, or None for a single node.
    :param grace_polls: re-checks 0.25 s apart inside one poke before giving the slot back.
    :param deferrable: wait in the triggerer instead of rescheduling (on the embedded chdb the trigger takes
        the same cross-process lock as the tasks, ``label_backfill.chdb_lock``).
    """

    template_fields: Sequence[str] = ("database", "mutations")

    def __init__(
        self,
        *,
        database: str,
        mutations: Any,
        cluster: str | None = None,
        clickhouse_conn_id: str = CLICKHOUSE_CONN_ID,
        deferrable: bool = False,
        grace_polls: int = 8,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.database, self.mutations, self.cluster = database, mutations, cluster
        self.grace_polls = grace_polls
        self.clickhouse_conn_id = clickhouse_conn_id
        self.deferrable = deferrable

    def _watched(self) -> list[tuple[str, str]]:
        mutations = self.mutations["mutations"] if isinstance(self.mutations, dict) else self.mutations
        return [(str(h), str(m)) for h, m in mutations]

    def poke(self, context: Any) -> bool:
        table = LabelTable(clickhouse_client(self.clickhouse_conn_id), self.database, self.cluster)
        # held through the grace polls: the embedded chdb runs the mutation only while a process holds it
        with held(table.client, "waiting for mutations"):
            check = check_mutations(table.mutations(), self._watched())
            for _ in range(
                self.grace_polls
            ):  # most deletes finish within a second: don't reschedule for those
                if check.state is not MutationState.PENDING:
                    break
                time.sleep(0.25)
                check = check_mutations(table.mutations(), self._watched())
        if check.state is MutationState.FAILED:
            raise AirflowFailException(f"ClickHouse delete failed: {check.reason}")
        if check.state is MutationState.PENDING:
            self.log.info("waiting for %s", ", ".join(check.pending))
        return check.state is MutationState.DONE

    def execute(self, context: Any) -> Any:
        with self._stop_our_delete_on_failure():
            if not self.deferrable:
                return super().execute(context)
            if self.poke(context):  # check once, defer only if not ready
                return None
        self.defer(
            trigger=ClickHouseMutationTrigger(
                self.clickhouse_conn_id,
                self.database,
                self.cluster,
                [list(m) for m in self._watched()],
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
            timeout=dt.timedelta(seconds=self.timeout),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        with self._stop_our_delete_on_failure():  # also the trigger's timeout, raised from here
            return super().resume_execution(next_method, next_kwargs, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event.get("status") != MutationState.DONE.value:
            raise AirflowFailException(f"ClickHouse delete failed: {event.get('reason')}")

    @contextlib.contextmanager
    def _stop_our_delete_on_failure(self) -> Iterator[None]:
        try:
            yield
        except (AirflowRescheduleException, TaskDeferred):
            raise
        except Exception as err:
            try:
                table = LabelTable(clickhouse_client(self.clickhouse_conn_id), self.database, self.cluster)
                killed = table.kill(self._watched())
                stopped = (
                    f"killed our pending delete {', '.join(killed)}"
                    if killed
                    else "no delete of ours is pending"
                )
            except Exception as kill_err:
                stopped = (
                    f"could NOT stop our delete ({kill_err}): KILL MUTATION {self._watched()} in "
                    f"{self.database} before anything else"
                )
            raise AirflowFailException(f"{err}; no day was rewritten; {stopped}") from err


class DayRewriteOperator(BaseOperator):
    """Base of the day runners: steps run at the start of every attempt of a day (cooperative ``__init__``).

    Its kwargs are runner-neutral: the day, and what of the plan a day needs (customer, database,
    ``allow_empty_source``, ``max_parallel_days``); a runner derives everything else (the job's env, a
    Job's name and labels) from them and the task's context.

    1. Wait for a turn (:meth:`wait_for_turn`): at most ``max_parallel_days`` days of the run work at
       once, earliest days first. A waiting day is rescheduled and holds no worker slot.
    2. Delete what an earlier attempt of this day left (none after the range delete), guarded like the
       preflight, and wait for that mutation, so the rewrite never doubles a row.
    """

    def __init__(
        self,
        *,
        customer: str,
        database: str,
        day: str,
        cluster: str | None = None,
        allow_empty_source: bool = False,
        max_parallel_days: int = 4,
        mutation_timeout: float = 3600,
        clickhouse_conn_id: str = CLICKHOUSE_CONN_ID,
        postgres_conn_id: str = POSTGRES_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.customer, self.database, self.day, self.cluster = customer, database, day, cluster
        self.allow_empty_source = allow_empty_source
        self.max_parallel_days = int(max_parallel_days)
        self.mutation_timeout = float(mutation_timeout)
        self.clickhouse_conn_id, self.postgres_conn_id = clickhouse_conn_id, postgres_conn_id

    def day_job_env(self) -> dict[str, str]:
        """The job's three env vars for this customer-day (range mode), whatever runs the job."""
        return day_job_env(self.customer, parse_day(self.day, "day"))

    def wait_for_turn(self, context: Any) -> None:
        """Start only while fewer than ``max_parallel_days`` of the days before this one are unfinished.

        Why not Airflow's own limit: ``max_parallel_days`` is a param of the run, and Airflow 3.3 has no
        per-run knob for it. ``max_active_tis_per_dagrun`` is read by the scheduler from the serialized DAG
        (a ``partial()`` argument fixed at parse time, typed int, not templated; a value passed through
        ``expand`` only reaches the worker's operator), and pools are global, their slots changed through
        the metadata database or the REST API, which task code cannot reach. So the DAG sets
        ``max_active_tis_per_dagrun`` to the param's maximum and this gate applies the run's value.

        The order is the map index (the scheduler's order too). Race-free, also when days check at the
        same moment: the earliest unfinished day always passes, so they never all back off; and of the
        days at work, the latest one in the order counted all the others when it checked (they are before
        it and were unfinished then: a finished day stays finished), so never more than
        ``max_parallel_days`` work. A day waiting for a retry keeps its place. One exception: a day
        *cleared* while later days already work is unfinished again, comes back ahead of them and starts
        beside them, so the run may exceed the limit by the cleared days until those finish.
        """
        if runs_one_task_at_a_time():
            return  # nothing else of the run can be at work: the limit holds, and a wait would cost an attempt
        wait_for_turn(context, self.max_parallel_days, "max_parallel_days")

    def clear_day_before_write(self, client: Any | None = None) -> None:
        """:param client: the attempt's ClickHouse client, when the runner has one already."""
        day = DayRange(parse_day(self.day, "day"), parse_day(self.day, "day"))
        client = client if client is not None else clickhouse_client(self.clickhouse_conn_id)
        table = LabelTable(client, self.database, self.cluster)
        left = table.row_count(self.customer, day)
        if not left:
            return
        with postgres_side(self.postgres_conn_id) as postgres:
            eligible = sum(s.rows for s in postgres.day_summaries(self.customer, day).values())
        if not eligible and not self.allow_empty_source:
            raise AirflowFailException(
                f"{self.day}: ClickHouse holds {left} rows but Postgres reports no eligible conversations; "
                "refusing to delete (set allow_empty_source to override)"
            )
        self.log.info("%s: deleting %s rows left by an earlier attempt before rewriting", self.day, left)
        try:
            table.wait(table.delete_range(self.customer, day), timeout=self.mutation_timeout)
        except MutationFailed as err:
            raise AirflowFailException(str(err)) from err


# Airflow 3.3.2 with the LocalExecutor: an answer recorded before the scheduler has processed the executor's
# event for the process that parked the task (seen here up to ~6 s after the task showed "awaiting input")
# finds the task queued again, and the scheduler marks it failed ("finished with state success, but the task
# instance's state attribute is queued": its resume-after-defer exception covers "scheduled" only). The DAG
# gives approve_delete one retry for this: the same request is asked again (Airflow keeps one request per task
# instance and clears its answer on a retry), and the task's label says "asked again".


class DeleteApprovalOperator(ApprovalOperator):
    """Ask a person to approve the range delete, showing what the preflight found; or ask nobody.

    When the run's ``require_approval`` is off (the default: the CLI, ``make demo`` and the drift check's
    repairs) it returns at once, approved without asking, so the flow goes on; ``delete_range`` keeps the
    ``all_success`` rule (a skipped gate would need a rule that lets the delete run after a skip).

    When on, it writes the approval request (``approval.approval_request``: customer, days, rows ClickHouse
    will delete, rows Postgres will rewrite, the drift before and the guard's findings) and the task waits
    in ``awaiting_input`` (no worker slot, no triggerer) until someone answers on its "Required Actions" page.
    Approve: the delete runs. Reject, or no answer within ``response_timeout`` (the default option, Reject,
    is then taken by the scheduler): ``delete_range`` is skipped and so is everything that writes; ``verify``
    (``all_done``) reports REJECTED. The decision is pushed as XCom ``decision`` (``proof.approval_decision``)
    and becomes the task's label.

    :param plan_task_id: the task whose XCom is the plan (``validate``).
    :param preflight_task_id: the task whose XCom is the preflight's findings (``preflight``).
    """

    # rendered when the task starts (params known: "waiting for approval") and again after it decided
    LABEL_TEMPLATE = (
        "{{ approval_label | default(('waiting for approval' ~ (' (asked again)' if ti.try_number > 1 else ''))"
        " if params.require_approval else '') }}"
    )

    def __init__(
        self,
        *,
        plan_task_id: str = "validate",
        preflight_task_id: str = "preflight",
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", "Approve the range delete")  # replaced by the preflight's numbers
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)  # what a timeout chooses
        kwargs.setdefault("map_index_template", self.LABEL_TEMPLATE)
        super().__init__(ignore_downstream_trigger_rules=False, fail_on_reject=False, **kwargs)
        self.plan_task_id, self.preflight_task_id = plan_task_id, preflight_task_id

    @property
    def _timeout_seconds(self) -> int | None:
        return int(self.response_timeout.total_seconds()) if self.response_timeout else None

    def _decide(self, context: Any, decision: dict[str, Any]) -> None:
        context["ti"].xcom_push(key="decision", value=decision)
        context["approval_label"] = label(decision_label(decision))
        self.log.info("approval: %s", decision_text(decision))

    def execute(self, context: Any) -> Any:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if not plan.get("require_approval"):
            decision = approval_decision(asked=False)
            self._decide(context, decision)
            return decision
        found = ti.xcom_pull(task_ids=self.preflight_task_id)
        self.subject, self.body = approval_request(plan, found, self._timeout_seconds)
        if (ti.try_number or 1) > 1:
            self.log.warning(
                "asked again (try %s): an earlier try ended without applying an answer", ti.try_number
            )
        self.log.info("asking for approval (try %s): %s", ti.try_number, self.subject)
        return super().execute(context)  # Airflow 3.3: raises TaskAwaitingInput (the task waits for input)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # no answer and no default (cannot happen: the default is Reject): reject
            self.log.warning("no usable answer (%s): rejecting", event.get("error"))
            event = {
                "chosen_options": [self.REJECT],
                "params_input": {},
                "responded_at": dt.datetime.now(dt.UTC),
                "responded_by_user": None,
                "timedout": event.get("error_type") == "timeout",
            }
        user = event.get("responded_by_user") or {}
        decision = approval_decision(
            asked=True,
            approved=list(event.get("chosen_options") or []) == [self.APPROVE],
            by=user.get("name"),
            at=event.get("responded_at"),
            timed_out=bool(event.get("timedout")),
            timeout_seconds=self._timeout_seconds,
        )
        self._decide(context, decision)
        # Reject: skips delete_range (its direct downstream), which skips every task that writes
        return super().execute_complete(context=context, event=event)


class CustomerLeaseSensor(BaseSensorOperator):
    """Claim the run's customer (``label_backfill.leases``) before anything reads or deletes it; wait while
    another run holds it, at most ``lease_wait`` seconds, then fail naming that run.

    The DAG makes it the setup of every task that deletes or rewrites (its teardown releases the customer):
    clearing a failed day clears it too, so a rerun claims the customer again before the day is rewritten.
    A dry run changes nothing and takes no lease. It runs whatever ``validate`` did (``all_done``): without a
    plan there is nothing to claim and it passes, so ``verify`` still reports (and alerts) the refusal.

    :param plan_task_id: the task whose XCom is the run's plan (``customer``, ``dry_run``).
    :param lease_wait: seconds to wait for the holder; 0 refuses at once.
    """

    def __init__(
        self,
        *,
        lease_wait: int,
        plan_task_id: str = "validate",
        state_conn_id: str = STATE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("trigger_rule", "all_done")
        # the sensor's own timeout only backs up poke()'s, which names the holder
        kwargs.setdefault("timeout", lease_wait + 10 * kwargs.get("poke_interval", 60))
        super().__init__(**kwargs)
        self.lease_wait, self.plan_task_id, self.state_conn_id = lease_wait, plan_task_id, state_conn_id

    def poke(self, context: Any) -> bool:
        ti = context["ti"]
        plan = ti.xcom_pull(task_ids=self.plan_task_id)
        if not plan:
            self.log.info("%s did not succeed: no customer to claim (verify reports why)", self.plan_task_id)
            return True
        if plan.get("dry_run"):
            self.log.info("dry run: nothing is deleted or rewritten, no lease is taken")
            return True
        customer = plan["customer"]
        holder = state_leases(self.state_conn_id).claim(customer, ti.dag_id, ti.run_id, run_finished(ti))
        if holder is None:
            return True
        busy = LeaseHeld(customer, holder)
        started = ti.get_first_reschedule_date(context) or ti.start_date or dt.datetime.now(dt.UTC)
        waited = (dt.datetime.now(dt.UTC) - started).total_seconds()
        if waited >= self.lease_wait:
            why = (
                f"{busy}: refused after waiting {waited:.0f} s (LABEL_BACKFILL_LEASE_WAIT_SECONDS="
                f"{self.lease_wait}); nothing was read or deleted. Trigger this run again once that run ended."
            )
            ti.xcom_push(key="refused", value=why)
            raise AirflowFailException(why)
        self.log.info("%s: waiting (%.0f of %s s)", busy, waited, self.lease_wait)
        return False


def hold_customer(context: Any) -> None:
    """``pre_execute`` of the tasks that delete or rewrite: fail unless this run holds the task's customer
    (``task.customer``), claiming it when free. The setup (``CustomerLeaseSensor``) claimed it; this catches
    a lease lost since (taken over after the run was marked finished) before a row is touched."""
    task, ti = context["task"], context["ti"]
    try:
        state_leases(getattr(task, "state_conn_id", STATE_CONN_ID)).hold(
            task.customer, ti.dag_id, ti.run_id, run_finished(ti)
        )
    except LeaseHeld as err:
        raise AirflowFailException(f"{err}: this run must not delete or rewrite it now") from None


class CustomerRepairOperator(TriggerDagRunOperator):
    """The fleet's repair of one customer-range: trigger its ``conversation_labels_backfill`` run and wait
    (deferred: no worker slot) until it ends; fail when it fails.

    At most ``max_parallel_customers`` repairs of the fleet run work at once, in map-index order (the same
    race-free turn as the days', ``DayRewriteOperator.wait_for_turn``). A rerun (Clear) finds the same
    backfill run (deterministic run id): adopted when it succeeded since (a day cleared and rerun in it),
    waited for when it still runs, reset (rerun whole, from its validate) when it failed.

    :param customer: the customer (the task's name in the grid).
    :param max_parallel_customers: the fleet run's param.
    """

    template_fields: Sequence[str] = (*TriggerDagRunOperator.template_fields, "customer")

    def __init__(self, *, customer: str, max_parallel_customers: int = 4, **kwargs: Any) -> None:
        kwargs.setdefault("wait_for_completion", True)
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("reset_dag_run", True)
        kwargs.setdefault("openlineage_inject_parent_info", False)  # the backfill refuses unknown conf keys
        super().__init__(**kwargs)
        self.customer = customer
        self.max_parallel_customers = int(max_parallel_customers)

    def execute(self, context: Any) -> Any:
        wait_for_turn(context, self.max_parallel_customers, "max_parallel_customers")
        ti, run_id = context["ti"], str(self.trigger_run_id)
        if ti.get_dr_count(dag_id=self.trigger_dag_id, run_ids=[run_id]):
            state = str(getattr(s := ti.get_dagrun_state(self.trigger_dag_id, run_id), "value", s))
            if state == "success":
                self.log.info("%s: backfill run %s already succeeded: adopted", self.customer, run_id)
                ti.xcom_push(key="trigger_run_id", value=run_id)
                return None
            if state in ("queued", "running"):
                self.log.info("%s: backfill run %s is %s: waiting for it", self.customer, run_id, state)
                ti.xcom_push(key="trigger_run_id", value=run_id)
                from airflow.providers.standard.triggers.external_task import DagStateTrigger

                raise TaskDeferred(
                    trigger=DagStateTrigger(
                        dag_id=self.trigger_dag_id,
                        states=[*self.allowed_states, *self.failed_states],
                        execution_dates=None,
                        run_ids=[run_id],
                        poll_interval=self.poke_interval,
                    ),
                    method_name="execute_complete",
                )
            self.log.info("%s: backfill run %s is %s: running it again", self.customer, run_id, state)
        return super().execute(context)


def wait_for_turn(context: Any, limit: int, limit_name: str) -> None:
    """Reschedule this mapped task while ``limit`` or more of the instances before it are unfinished: the
    turn of the days (``DayRewriteOperator.wait_for_turn``, which says why it is race-free) and of the
    fleet's customers (``CustomerRepairOperator``).

    :param limit_name: the param that set ``limit``, for the log.
    """
    ti = context["ti"]
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id]).get(
        ti.run_id, {}
    )
    ahead = days_ahead(states, ti.task_id, ti.map_index)
    if len(ahead) < limit:
        return
    log.info(
        "%s earlier instance(s) not finished, %s=%s: waiting (map indexes %s)",
        len(ahead),
        limit_name,
        limit,
        sorted(ahead),
    )
    if any(state in STARTING_STATES for state in ahead.values()):
        delay = _RESCHEDULE_SOON_SECONDS  # one ahead is only about to start: the line moves soon
    else:  # the ones ahead work: the further back in line, the longer until a turn can come
        delay = min(_RESCHEDULE_SECONDS + len(ahead) - limit, _RESCHEDULE_MAX_SECONDS)
    raise AirflowRescheduleException(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))


def __getattr__(name: str) -> Any:
    """``LabelDayKubernetesOperator`` is imported from here as before, loaded only when asked for."""
    if name == "LabelDayKubernetesOperator":
        from label_backfill.k8s_day import LabelDayKubernetesOperator

        return LabelDayKubernetesOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
