"""DAG validation: both DAGs import cleanly, have no cycles, set retries and timeouts, parse without touching
a database, and expose the documented contract (ids, params, schedule, task names)."""

from __future__ import annotations

import socket

import pytest

from tests.helpers import REPO, load_dag

pytestmark = pytest.mark.dag

BACKFILL, DRIFT = "conversation_labels_backfill", "conversation_labels_drift_check"
FLEET = "conversation_labels_fleet_backfill"


@pytest.fixture
def no_network(monkeypatch):
    """Parsing must not open a connection: any socket connect fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a DAG opened a network connection at parse time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_CONVERSATIONS", "postgres://nobody@192.0.2.1:5432/none")
    monkeypatch.setenv("AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS", "clickhouse://nobody@192.0.2.1:8123/none")


@pytest.mark.parametrize("runner", ["local", "kubernetes"])
def test_dags_import_without_errors_or_io(no_network, monkeypatch, runner):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("LABEL_BACKFILL_JOB_RUNNER", runner)
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {BACKFILL, DRIFT, FLEET}
    label_day = bag.dags[BACKFILL].get_task("label_day")
    expected = "LabelDayLocalOperator" if runner == "local" else "LabelDayKubernetesOperator"
    assert label_day.operator_name == expected


@pytest.mark.parametrize("dag_id", [BACKFILL, DRIFT, FLEET])
def test_every_task_has_retries_and_a_timeout(dag_id):
    dag = load_dag(dag_id)
    for task in dag.tasks:
        assert task.retries is not None, task.task_id
        assert task.execution_timeout is not None, task.task_id
    dag.topological_sort()  # raises on a cycle


def test_backfill_contract():
    dag = load_dag(BACKFILL)
    assert dag.schedule is None and dag.max_active_runs > 1 and not dag.catchup
    assert {t.task_id for t in dag.tasks} == {
        "validate",
        "claim_customer",
        "release_customer",
        "preflight",
        "plan_days",
        "repair_requested",
        "approve_delete",
        "delete_range",
        "wait_for_mutations",
        "label_day",
        "verify",
    }

    def upstream(task_id: str) -> set[str]:
        return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}

    # nothing deletes early, nor without the approval step (which asks only when require_approval is on)
    assert {"validate", "preflight", "repair_requested", "approve_delete"} <= upstream("delete_range")
    # one run at a time per customer: every task that reads for, deletes or rewrites the customer is inside
    # the claim's setup/teardown scope (a cleared day claims again) and checks the lease before it works
    claim, release = dag.get_task("claim_customer"), dag.get_task("release_customer")
    assert claim.is_setup and release.is_teardown and claim.task_id in upstream("release_customer")
    # a waiting claim is a reschedule-mode sensor: Airflow can fail one poke on a late executor event
    # (apache/airflow#71172); it retries, while its refusal (AirflowFailException) stays final
    assert claim.mode == "reschedule" and claim.retries >= 1
    for task_id in ("preflight", "delete_range", "label_day", "verify"):
        assert "claim_customer" in upstream(task_id)
        assert "release_customer" in {t.task_id for t in dag.get_task(task_id).get_flat_relatives()}
    from label_backfill.operators import hold_customer

    assert dag.get_task("delete_range")._pre_execute_hook is hold_customer
    assert dag.get_task("label_day").partial_kwargs["pre_execute"] is hold_customer
    assert {"validate", "preflight", "repair_requested"} <= upstream("approve_delete")
    assert dag.get_task("delete_range").trigger_rule == "all_success"  # a rejected approval skips it
    approve = dag.get_task("approve_delete")
    assert approve.options == ["Approve", "Reject"] and approve.defaults == ["Reject"]  # no answer = Reject
    assert approve.response_timeout is not None and approve.retries == 1  # asks again (an Airflow race)
    assert not approve.ignore_downstream_trigger_rules  # verify (all_done) still runs and reports REJECTED
    assert {t.task_id for t in approve.downstream_list} == {"delete_range"}
    assert {"delete_range", "wait_for_mutations", "plan_days"} <= upstream("label_day")
    assert upstream("verify") == {t.task_id for t in dag.tasks} - {"verify", "release_customer"}
    params = dag.params.dump()
    assert set(params) >= {
        "customer",
        "start_date",
        "end_date",
        "dry_run",
        "max_parallel_days",
        "max_days",
        "allow_empty_source",
        "max_delete_ratio",
        "sample_size",
        "require_approval",
    }
    assert params["dry_run"] is False and params["max_parallel_days"] == 4
    assert params["require_approval"] is False  # opt-in: the CLI, make demo and auto-repairs never wait
    assert dag.params.get_param("require_approval").schema["title"] == "Ask for approval before deleting"
    schema = dag.params.get_param("start_date").schema
    assert schema["type"] == "string" and schema["format"] == "date" and schema.get("title")
    assert all(dag.params.get_param(p).description for p in params)  # the trigger form explains every param
    label_day = dag.get_task("label_day")
    assert label_day.map_index_template == "{{ task.day }}"
    assert dag.get_task("verify").trigger_rule == "all_done"
    # the proof in the run's task list (rendered after the task ran) and on the asset event of an exact run
    assert "backfill_proof" in dag.get_task("verify").map_index_template
    assert "backfill_proof" in dag.get_task("preflight").map_index_template
    assert [a.name for a in dag.get_task("verify").outlets] == ["conversation_with_labels"]
    assert dag.get_task("wait_for_mutations").mode == "reschedule"
    sql_dir = REPO / "plugins" / "label_backfill" / "sql"
    assert dag.template_searchpath and str(sql_dir) in dag.template_searchpath
    assert dag.doc_md and "validate" in dag.doc_md


def test_drift_contract():
    dag = load_dag(DRIFT)
    assert dag.max_active_runs == 1 and not dag.catchup
    assert dag.timetable.expression == "0 4 * * *"
    params = dag.params.dump()
    assert params["customers"] == [] and params["lookback_days"] == 7 and params["auto_repair"] is False
    assert set(params) == {"customers", "lookback_days", "auto_repair", "max_repair_days", "sample_size"}
    # each customer is named by its outcome, the run's summary by report (see label_backfill.proof)
    # (the customer alone while it runs or if it dies before a result)
    assert dag.get_task("check_customer").map_index_template == (
        "{{ customer_label | default(task.op_kwargs['customer']) }}"
    )
    assert "drift_summary" in dag.get_task("report").map_index_template
    assert [a.name for a in dag.get_task("report").outlets] == ["conversation_labels_drift_report"]
    assert {t.task_id for t in dag.leaves} == {"alert"}
    assert {t.task_id for t in dag.tasks} == {
        "check_window",
        "customers_to_check",
        "check_customer",
        "plan_repairs",
        "trigger_repairs",
        "report",
        "alert",
    }

    def upstream(task_id: str) -> set[str]:
        return {t.task_id for t in dag.get_task(task_id).get_flat_relatives(upstream=True)}

    assert upstream("check_window") == set()  # refuses unknown conf keys before anything reads a database
    assert upstream("customers_to_check") == {"check_window"}
    assert upstream("report") == {t.task_id for t in dag.tasks} - {"report", "alert"}
    assert upstream("alert") == {t.task_id for t in dag.tasks} - {"alert"}
    # a customer whose check failed must neither hide the others from the report nor stop their repairs
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.get_task("plan_repairs").trigger_rule == "all_done"
    assert dag.get_task("alert").trigger_rule == "all_success" and dag.get_task("alert").retries == 0


def test_alert_settings_attach_the_notifier_without_io_at_parse(no_network, monkeypatch):
    """With e-mail and Slack set (the Slack provider absent), both DAGs still parse, doing no I/O, and the tasks
    whose failure ends a run badly carry the notifier."""
    from airflow.dag_processing.dagbag import DagBag
    from label_backfill.alerts import LabelAlertNotifier

    monkeypatch.setenv("LABEL_BACKFILL_ALERT_EMAILS", "oncall@example.test")
    monkeypatch.setenv("LABEL_BACKFILL_SLACK_CONN_ID", "slack_alerts")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}

    def alerting(dag_id: str) -> set[str]:
        dag = bag.dags[dag_id]
        return {
            t.task_id
            for t in dag.tasks
            if any(isinstance(c, LabelAlertNotifier) for c in (t.on_failure_callback or []))
        }

    assert alerting(BACKFILL) == {"verify", "claim_customer"}  # a failed claim stops verify: it alerts itself
    assert alerting(DRIFT) == {"report", "alert"}
    assert alerting("conversation_labels_fleet_backfill") == {"fleet_verdict"}
