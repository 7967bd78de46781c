"""One run at a time per customer (issue 13): a backfill of a customer another run holds waits, or is
refused naming that run, before anything is read or deleted; a run on another customer proceeds meanwhile.

The other run is a real ``running`` dag run in Airflow's metadata database holding the customer's lease in
the state database (real Postgres); the runs under test are ``dag.test()`` runs on the embedded stack.
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest

from tests.helpers import oracle_mismatches, run_dag, table_snapshot

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
DB = "alaska_air_us_east_1"


@pytest.fixture
def holder(airflow_db, stack):
    """A running backfill of alaska-air that holds its lease (as if its days were being rewritten)."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from label_backfill.leases import state_leases

    run_id = f"manual__holder_{time.time_ns()}"
    session = settings.Session()
    session.add(DagRun(dag_id=DAG_ID, run_id=run_id, run_type="manual", state="running", conf={}))
    session.commit()
    leases = state_leases()
    assert leases.claim("alaska-air", DAG_ID, run_id, lambda d, r: False) is None
    yield run_id
    leases.release("alaska-air", DAG_ID, run_id)
    session.query(DagRun).filter(DagRun.run_id == run_id).update({"state": "failed"})
    session.commit()


def conf(customer="alaska-air", **overrides):
    return {"customer": customer, "start_date": "2026-02-02", "end_date": "2026-02-04", **overrides}


def deletes(ch, database: str) -> int:
    return ch.query(
        "SELECT count() FROM system.mutations WHERE database = {d:String} AND command LIKE '%DELETE%'",
        parameters={"d": database},
    ).result_rows[0][0]


def test_a_second_run_on_a_held_customer_is_refused_naming_the_holder_and_touches_nothing(
    incident, holder, ch, airflow_db, monkeypatch, capfd
):
    monkeypatch.setenv("LABEL_BACKFILL_LEASE_WAIT_SECONDS", "0")
    before, mutations = table_snapshot(ch, DB), deletes(ch, DB)
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "failed", states
    assert states["claim_customer"] == ["failed"] and states["preflight"] == ["upstream_failed"], states
    # a failed setup stops its whole scope: verify does not run either (the claim's failure alerts)
    assert states["delete_range"] == ["upstream_failed"] and states["verify"] == ["upstream_failed"]
    out = capfd.readouterr()
    assert f"customer alaska-air is being repaired by run '{holder}' of {DAG_ID}" in out.out + out.err
    assert table_snapshot(ch, DB) == before and deletes(ch, DB) == mutations  # nothing read for, or deleted


def test_a_run_on_another_customer_proceeds_meanwhile(incident, holder, ch, pg, airflow_db, monkeypatch):
    monkeypatch.setenv("LABEL_BACKFILL_LEASE_WAIT_SECONDS", "0")
    run, states = run_dag(DAG_ID, conf("horizon-air"))
    assert str(run.state) == "success", states
    assert oracle_mismatches(pg, ch, "horizon-air", "horizon_air_us_west_2", "2026-02-02", "2026-02-04") == []
    from label_backfill.leases import state_leases

    leases = state_leases()
    assert leases.holder("horizon-air") is None  # released by the run's teardown
    assert leases.holder("alaska-air").run_id == holder  # never touched


def test_a_waiting_run_starts_once_the_holder_releases(incident, holder, ch, pg, airflow_db, monkeypatch):
    from label_backfill.leases import state_leases

    monkeypatch.setenv("LABEL_BACKFILL_LEASE_WAIT_SECONDS", "120")
    monkeypatch.setenv("LABEL_BACKFILL_LEASE_POKE_SECONDS", "1")
    released_at: list[dt.datetime] = []

    def release_later() -> None:
        time.sleep(4)
        released_at.append(dt.datetime.now(dt.UTC))
        state_leases().release("alaska-air", DAG_ID, holder)

    threading.Thread(target=release_later, daemon=True).start()
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "success", states
    delete = next(ti for ti in run.get_task_instances() if ti.task_id == "delete_range")
    assert released_at and delete.start_date > released_at[0]  # it waited, then deleted
    assert oracle_mismatches(pg, ch, "alaska-air", DB, "2026-02-02", "2026-02-04") == []


def test_a_lease_left_by_a_finished_run_is_taken_over(incident, holder, ch, pg, airflow_db, monkeypatch):
    from airflow import settings
    from airflow.models.dagrun import DagRun

    monkeypatch.setenv("LABEL_BACKFILL_LEASE_WAIT_SECONDS", "0")
    session = settings.Session()
    session.query(DagRun).filter(DagRun.run_id == holder).update(
        {"state": "failed"}
    )  # marked failed in the UI
    session.commit()
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "success", states
    assert oracle_mismatches(pg, ch, "alaska-air", DB, "2026-02-02", "2026-02-04") == []
