"""The nightly drift check on the embedded stack (real Postgres server, real ClickHouse engine)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from label_backfill.dev.simulate import SCALES, simulate

from tests.crafted import relabel, reset_all
from tests.helpers import load_dag, report_name

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
    return json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())


def report_path(reports_dir, run):
    return "file://" + str(reports_dir / DAG_ID / report_name(run.run_id))  # the URL alerts and logs name


def alert_text(capfd):
    """Everything logged during the run (dag.test logs the alert's failure message there)."""
    return "".join(capfd.readouterr())


def drift_events(run):
    """The extras of the asset events the run emitted (report's drift summary)."""
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        found = session.query(AssetEvent).filter_by(source_dag_id=DAG_ID, source_run_id=run.run_id).all()
        return [e.extra for e in found]


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
    summary = next(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "report")
    assert summary == "clean: 3 customer(s) equal"


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
    markdown = (reports_dir / DAG_ID / report_name(run.run_id, ".md")).read_text()
    assert markdown.index("horizon-air") < markdown.index("alaska-air") and "## horizon-air" in markdown
    # without a log: each customer named by its outcome, the run's summary on report and its asset event
    assert states["check_customer"] == ["success", "failed", "success"]  # red: the customer not equal
    shown = {ti.task_id: [] for ti in run.get_task_instances()}
    for ti in sorted(run.get_task_instances(), key=lambda t: t.map_index):
        shown[ti.task_id].append(ti.rendered_map_index)
    assert shown["check_customer"] == [
        "alaska-air · clean",
        f"horizon-air · DRIFT 2026-02-03..2026-02-04 (stale {changed:,})",
        "sun-country · clean",
    ]
    assert shown["report"] == ["DRIFT horizon-air 2026-02-03..2026-02-04 · clean 2"]
    (event,) = drift_events(run)
    assert event["drifted"] == {"horizon-air": "2026-02-03..2026-02-04"} and event["ok"] is False
    assert event["statuses"] == {"clean": ["alaska-air", "sun-country"], "drift": ["horizon-air"]}


def test_a_missing_database_is_reported_without_hiding_the_others(
    incident, pg, ch, airflow_db, reports_dir, capfd
):
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
    problem = "ghost-air: missing_database (no table ghost_air_us_east_1.conversation_with_labels)"
    assert str(run.state) == "failed" and report["ok"] is False and report["problems"] == [problem]
    # alaska-air, ghost-air, horizon-air, sun-country: only the customer that is not equal goes red
    assert states["check_customer"] == ["success", "failed", "success", "success"] and states["alert"] == [
        "failed"
    ]
    others = [c for c in report["customers"] if c["customer"] != "ghost-air"]
    assert all(len(c["days"]) == 14 and c["totals"]["pg_eligible"] > 0 for c in others)  # really compared
    out = alert_text(capfd)
    assert f"label drift: {problem} (report {report_path(reports_dir, run)})" in out


def test_auto_repair_hands_the_night_to_one_fleet_run_whose_repairs_make_the_next_night_clean(
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
    assert report["repairs"]["fleet_dag_id"] == "conversation_labels_fleet_backfill"
    with create_session() as session:
        queued = (
            session.query(DagRun)
            .filter(
                DagRun.dag_id == "conversation_labels_fleet_backfill",
                DagRun.run_id.like("drift_repair__%"),
            )
            .order_by(DagRun.id.desc())
            .first()
        )
        fleet_conf = dict(queued.conf)
    assert fleet_conf == {"repairs": [t["conf"] for t in triggered], "dry_run": False}
    assert triggered[0]["trigger_run_id"].startswith(
        f"fleet__alaska-air__2026-02-01__2026-02-14__{queued.run_id}"
    )

    # what the fleet run's repair would run (its children need a scheduler: tests/scheduler covers that path)
    repaired, _ = run_dag("conversation_labels_backfill", triggered[0]["conf"])
    assert str(repaired.state) == "success"
    run, states = run_check(customers=["alaska-air"])
    assert str(run.state) == "success" and read_report(reports_dir, run)["ok"] is True


# --- Never green when it could not check (issue 9, point 1) ---------------------------------------------


@pytest.fixture
def no_pending_backfills():
    """Triggered backfills stay queued under dag.test (no scheduler); forget them so a test's auto_repair is
    not held back by another test's leftovers ("a backfill is queued: nothing triggered")."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    def forget():
        with create_session() as session:
            session.query(DagRun).filter(
                DagRun.dag_id == "conversation_labels_backfill", DagRun.state.in_(["queued", "running"])
            ).delete(synchronize_session=False)

    forget()
    yield
    forget()


def test_unreachable_postgres_fails_the_run_saying_nobody_was_checked(
    incident, airflow_db, reports_dir, capfd, monkeypatch
):
    dead = {"conn_type": "postgres", "host": "127.0.0.1", "port": 1, "login": "nobody", "schema": "none"}
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_CONVERSATIONS", json.dumps(dead))
    run, states = run_check()
    out = alert_text(capfd)
    assert str(run.state) == "failed", states
    assert states["customers_to_check"] == ["failed"] and states["check_customer"] == ["upstream_failed"]
    assert states["report"] == ["success"] and states["alert"] == ["failed"]
    report = read_report(reports_dir, run)
    assert report["ok"] is False and report["customers"] == []
    assert report["problems"][0].startswith("no customer was checked: listing the customers failed: ")
    assert "OperationalError" in report["problems"][0] and report["not_checked_reason"]
    assert "label drift: no customer was checked: listing the customers failed: " in out
    assert report_path(reports_dir, run) in out
    markdown = (reports_dir / DAG_ID / report_name(run.run_id, ".md")).read_text()
    assert "every customer matches" not in markdown and "no customer was checked" in markdown


def test_zero_profiles_fail_the_run(pg, ch, airflow_db, reports_dir, capfd):
    reset_all(pg, ch)
    run, states = run_check()
    out = alert_text(capfd)
    assert str(run.state) == "failed" and states["alert"] == ["failed"], states
    report = read_report(reports_dir, run)
    assert report["ok"] is False and report["customers"] == []
    assert report["problems"] == ["no customer was checked: Postgres has no profiles"]
    assert "label drift: no customer was checked: Postgres has no profiles" in out


def test_an_invalid_requested_customer_is_reported_and_the_others_still_checked(
    incident, pg, ch, airflow_db, reports_dir, capfd
):
    make_clean(pg, ch)
    bad = "x; DROP DATABASE y"
    run, states = run_check(customers=[bad, "alaska-air"])
    out = alert_text(capfd)
    assert str(run.state) == "failed", states
    assert states["customers_to_check"] == ["success"] and states["check_customer"] == ["success", "failed"]
    report = read_report(reports_dir, run)
    statuses = {c["customer"]: c["status"] for c in report["customers"]}
    assert statuses == {"alaska-air": "clean", bad: "invalid"}
    alaska = next(c for c in report["customers"] if c["customer"] == "alaska-air")
    assert len(alaska["days"]) == 14 and alaska["totals"]["pg_eligible"] > 0
    [problem] = report["problems"]
    assert problem.startswith(f"{bad}: invalid (customers: {bad!r} is not a customer id")
    assert f"label drift: {problem}" in out


def test_a_malformed_profile_does_not_stop_the_others_checks_or_repairs(
    incident, pg, ch, airflow_db, reports_dir, capfd, no_pending_backfills
):
    with pg.cursor() as cur:
        cur.execute("INSERT INTO profiles VALUES ('bad-region-air', 'US EAST')")
    pg.commit()
    run, states = run_check(auto_repair=True, max_repair_days=14)
    out = alert_text(capfd)
    assert str(run.state) == "failed", states
    assert states["check_customer"] == ["failed"] * 4  # three drifted, one invalid: none is equal
    assert states["plan_repairs"] == ["success"] and states["trigger_repairs"] == ["success"]  # one fleet run
    report = read_report(reports_dir, run)
    statuses = {c["customer"]: c["status"] for c in report["customers"]}
    assert statuses == {
        "alaska-air": "drift",
        "horizon-air": "drift",
        "sun-country": "drift",
        "bad-region-air": "invalid",
    }
    bad = next(c for c in report["customers"] if c["customer"] == "bad-region-air")
    assert "region: 'US EAST'" in bad["error"]
    assert {t["conf"]["customer"] for t in report["repairs"]["triggered"]} == {
        "alaska-air",
        "horizon-air",
        "sun-country",
    }
    assert any(p.startswith("bad-region-air: invalid (region: 'US EAST'") for p in report["problems"])
    assert "bad-region-air: invalid (region: 'US EAST'" in out and "alaska-air: drift on" in out


def test_a_crashed_customer_task_is_reported_not_checked_and_the_others_repaired(
    incident, pg, ch, airflow_db, reports_dir, capfd, monkeypatch, no_pending_backfills
):
    """A check_customer instance that dies outside its own error handling (here a task timeout, which is
    not an Exception) leaves no result: the report must notice the customer is missing."""
    import label_backfill.compare
    from airflow.sdk.exceptions import AirflowTaskTimeout

    real = label_backfill.compare.compare

    def crash_on_horizon(postgres, clickhouse, customer, days, **kw):
        if customer == "horizon-air":
            raise AirflowTaskTimeout("simulated timeout")
        return real(postgres, clickhouse, customer, days, **kw)

    monkeypatch.setattr(label_backfill.compare, "compare", crash_on_horizon)
    run, states = run_check(auto_repair=True, max_repair_days=14)
    out = alert_text(capfd)
    assert str(run.state) == "failed", states
    assert states["check_customer"] == ["failed"] * 3  # alaska and sun-country drifted, horizon crashed
    shown = sorted(
        (ti.map_index, ti.rendered_map_index)
        for ti in run.get_task_instances()
        if ti.task_id == "check_customer"
    )
    assert shown[1] == (1, "horizon-air") and shown[0][1].startswith("alaska-air · DRIFT 2026-02-01..")
    report = read_report(reports_dir, run)
    statuses = {c["customer"]: c["status"] for c in report["customers"]}
    assert statuses == {"alaska-air": "drift", "horizon-air": "not_checked", "sun-country": "drift"}
    assert {t["conf"]["customer"] for t in report["repairs"]["triggered"]} == {"alaska-air", "sun-country"}
    assert states["trigger_repairs"] == ["success"]  # one fleet run for both
    problem = next(p for p in report["problems"] if p.startswith("horizon-air"))
    assert problem.startswith("horizon-air: not_checked (check_customer [1] left no result")
    assert f"{problem}" in out


def test_unreachable_clickhouse_is_each_customers_error_and_fails_the_run(
    incident, airflow_db, reports_dir, capfd, monkeypatch
):
    dead = {"conn_type": "clickhouse", "host": "127.0.0.1", "port": 1, "extra": {"connect_timeout": 2}}
    monkeypatch.setenv("AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS", json.dumps(dead))
    run, states = run_check()
    out = alert_text(capfd)
    assert str(run.state) == "failed" and states["check_customer"] == ["failed"] * 3, states
    report = read_report(reports_dir, run)
    assert {c["status"] for c in report["customers"]} == {"error"} and len(report["problems"]) == 3
    for customer in ("alaska-air", "horizon-air", "sun-country"):
        problem = next(p for p in report["problems"] if p.startswith(f"{customer}: error ("))
        assert problem in out


def test_a_customer_without_rows_on_either_side_is_no_data_not_clean(
    incident, pg, ch, airflow_db, reports_dir
):
    from tests.crafted import make_customer

    make_clean(pg, ch)
    make_customer(pg, ch, "quiet-air")  # a profile, agents and a table, but no conversation
    run, states = run_check()
    assert str(run.state) == "success", states  # an inactive customer alone does not fail the night
    report = read_report(reports_dir, run)
    statuses = {c["customer"]: c["status"] for c in report["customers"]}
    assert statuses == {
        "alaska-air": "clean",
        "horizon-air": "clean",
        "sun-country": "clean",
        "quiet-air": "no_data",
    }
    assert report["ok"] is True and report["problems"] == [] and report["no_data"] == ["quiet-air"]
    markdown = (reports_dir / DAG_ID / report_name(run.run_id, ".md")).read_text()
    assert "| quiet-air | no_data |" in markdown and "no data" in markdown.split("|")[0]


def test_a_night_where_every_customer_has_no_data_fails(incident, pg, ch, airflow_db, reports_dir, capfd):
    """A dead source or a wrong window looks exactly like this: zero rows on both sides for everyone."""
    dag = load_dag(DAG_ID)
    run = dag.test(logical_date=dt.datetime(2027, 6, 1, 4, tzinfo=dt.UTC), run_conf={"lookback_days": 3})
    out = alert_text(capfd)
    assert str(run.state) == "failed"
    report = read_report(reports_dir, run)
    assert {c["status"] for c in report["customers"]} == {"no_data"} and len(report["customers"]) == 3
    assert report["problems"] == [
        "every checked customer has no data on either side over 2027-05-29..2027-05-31 "
        "(3 customers): a dead source or a wrong window?"
    ]
    assert "label drift: every checked customer has no data" in out


# --- Unknown params are refused (issue 9, point 2) -------------------------------------------------------


def test_an_unknown_param_is_refused_before_any_database_is_touched(
    incident, airflow_db, reports_dir, capfd, monkeypatch
):
    import label_backfill.hooks

    touched = []

    def spy(name):
        def refuse(*args, **kwargs):
            touched.append(name)
            raise AssertionError(f"{name} opened after an unknown param")

        return refuse

    monkeypatch.setattr(label_backfill.hooks, "postgres_connection", spy("postgres"))
    monkeypatch.setattr(label_backfill.hooks, "clickhouse_client", spy("clickhouse"))
    run, states = run_check(lookback_day=3)
    out = alert_text(capfd)
    assert touched == []
    assert str(run.state) == "failed", states
    assert states["check_window"] == ["failed"] and states["customers_to_check"] == ["upstream_failed"]
    assert states["check_customer"] == ["upstream_failed"] and states["alert"] == ["failed"]
    message = "unknown param 'lookback_day' (did you mean 'lookback_days'?)"
    assert message in out
    report = read_report(reports_dir, run)
    assert report["ok"] is False and report["customers"] == []
    assert report["problems"][0].startswith("no customer was checked: the run's params were refused: ")
    assert message in report["problems"][0]
    assert f"label drift: no customer was checked: the run's params were refused: {message}" in out
