"""The nightly drift check on the embedded stack (real Postgres server, real ClickHouse engine)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from label_backfill.dev.simulate import SCALES, simulate

from tests.crafted import relabel, reset_all
from tests.helpers import load_dag

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_drift_check"
NIGHT = dt.datetime(2026, 2, 15, 4, 0, tzinfo=dt.UTC)  # checks 2026-02-01..2026-02-14 with lookback 14
SIM = SCALES["small"]


def run_check(**params):
    dag = load_dag(DAG_ID)
    run = dag.test(logical_date=NIGHT, run_conf={"lookback_days": 14, **params})
    states = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return run, states


def read_report(reports_dir, run):
    return json.loads((reports_dir / DAG_ID / f"{run.run_id}.json").read_text())


@pytest.fixture
def incident(pg, ch):
    reset_all(pg, ch)
    return simulate(pg, ch, scale_name="small", seed=7)


def make_clean(pg, ch):
    for customer, region in SIM.customers:
        relabel(pg, ch, customer, f"{customer}_{region}".replace("-", "_"), SIM.days.start, SIM.days.end)


def test_a_clean_night_is_green(incident, pg, ch, airflow_db, reports_dir):
    make_clean(pg, ch)
    run, states = run_check()
    assert str(run.state) == "success", states
    assert states["check_customer"] == ["success"] * 3 and states["alert"] == ["success"]
    report = read_report(reports_dir, run)
    assert report["ok"] is True and report["problems"] == []
    assert (report["start_date"], report["end_date"]) == ("2026-02-01", "2026-02-14")
    assert {c["status"] for c in report["customers"]} == {"clean"}
    assert all(len(c["days"]) == 14 and all(d["ok"] for d in c["days"]) for c in report["customers"])


def test_an_incident_is_flagged_per_customer_and_day_and_alerts(
    incident, pg, ch, airflow_db, reports_dir, capfd
):
    make_clean(pg, ch)
    with pg.cursor() as cur:  # drift on two days of one customer only
        cur.execute(
            "UPDATE conversations SET usecase_id = 'cargo' WHERE customer_id = 'horizon-air' AND "
            "started_at >= '2026-02-03' AND started_at < '2026-02-05' AND source = 'chat' AND ended_at IS NOT NULL "
            "AND usecase_id <> 'cargo' AND agent_user_id IN (SELECT user_id FROM users WHERE NOT is_dev_user)"
        )
        changed = cur.rowcount
    pg.commit()
    run, states = run_check()
    assert str(run.state) == "failed" and states["alert"] == ["failed"] and states["report"] == ["success"]
    report = read_report(reports_dir, run)
    assert report["problems"] == ["horizon-air: drift on 2026-02-03..2026-02-04"]
    horizon = report["customers"][0]  # drifted customers first
    assert horizon["customer"] == "horizon-air" and horizon["status"] == "drift"
    bad = [d for d in horizon["days"] if not d["ok"]]
    assert [d["date"] for d in bad] == ["2026-02-03", "2026-02-04"]
    assert sum(d["stale"] for d in bad) == changed and all(d["missing"] == d["extra"] == 0 for d in bad)
    assert bad[0]["sample"] and bad[0]["sample"][0]["postgres"]["usecase_id"] == "cargo"
    assert "label drift: horizon-air: drift on 2026-02-03..2026-02-04" in "".join(capfd.readouterr())
    markdown = (reports_dir / DAG_ID / f"{run.run_id}.md").read_text()
    assert markdown.index("horizon-air") < markdown.index("alaska-air") and "## horizon-air" in markdown


def test_a_missing_database_is_reported_without_hiding_the_others(incident, pg, ch, airflow_db, reports_dir):
    make_clean(pg, ch)
    with pg.cursor() as cur:
        cur.execute("INSERT INTO profiles VALUES ('ghost-air', 'us-east-1')")
    pg.commit()
    run, states = run_check()
    report = read_report(reports_dir, run)
    statuses = {c["customer"]: c["status"] for c in report["customers"]}
    assert statuses == {
        "alaska-air": "clean",
        "horizon-air": "clean",
        "sun-country": "clean",
        "ghost-air": "missing_database",
    }
    assert str(run.state) == "failed" and report["problems"] == [
        "ghost-air: missing_database (no table ghost_air_us_east_1.conversation_with_labels)"
    ]


def test_auto_repair_triggers_backfills_that_make_the_next_night_clean(
    incident, pg, ch, airflow_db, reports_dir
):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from tests.helpers import run_dag

    run, states = run_check(customers=["alaska-air"], auto_repair=True, max_repair_days=14)
    report = read_report(reports_dir, run)
    triggered = report["repairs"]["triggered"]
    assert [t["conf"] for t in triggered] == [
        {"customer": "alaska-air", "start_date": "2026-02-01", "end_date": "2026-02-14"}
    ]
    assert states["trigger_repairs"] == ["success"]
    with create_session() as session:
        queued = (
            session.query(DagRun)
            .filter(
                DagRun.dag_id == "conversation_labels_backfill",
                DagRun.run_id == triggered[0]["trigger_run_id"],
            )
            .one()
        )
        conf = dict(queued.conf)
    assert conf == triggered[0]["conf"]

    repaired, _ = run_dag("conversation_labels_backfill", conf)  # what the scheduler would run
    assert str(repaired.state) == "success"
    run, states = run_check(customers=["alaska-air"])
    assert str(run.state) == "success" and read_report(reports_dir, run)["ok"] is True
