"""The fleet's dry run (issue 13) under ``dag.test()`` on the embedded stack: a plan per customer with the
drifted days, the rows each side would move and the guard's verdict, fleet totals, nothing changed.

The repair path (one backfill run per customer, run by the scheduler) is covered by tests/scheduler."""

from __future__ import annotations

import json

import pytest

from tests.helpers import report_name, run_dag, table_snapshot

pytestmark = pytest.mark.integration

FLEET = "conversation_labels_fleet_backfill"
DBS = {
    "alaska-air": "alaska_air_us_east_1",
    "horizon-air": "horizon_air_us_west_2",
    "sun-country": "sun_country_us_east_1",
}
SPAN = {"start_date": "2026-02-02", "end_date": "2026-02-04"}


@pytest.fixture
def incident(stack, ch, pg):
    from label_backfill.dev.simulate import simulate

    incident = simulate(pg, ch, scale_name="small", seed=7)
    # sun-country: Postgres lost a day ClickHouse holds (a lagging replica looks like this): the guard refuses
    pg.execute(
        "DELETE FROM conversations WHERE customer_id = 'sun-country' AND (started_at AT TIME ZONE 'UTC')::date "
        "= '2026-02-03'"
    )
    pg.commit()
    return incident


def test_the_dry_run_plans_every_customer_and_changes_nothing(incident, ch, airflow_db, reports_dir):
    before = {c: table_snapshot(ch, db) for c, db in DBS.items()}
    run, states = run_dag(FLEET, {"customers": sorted(DBS), **SPAN})  # dry_run: the default
    assert str(run.state) == "success", states  # every customer was checked
    assert sorted(states["plan_customer"]) == ["failed", "success", "success"]  # sun-country refused: red
    assert states["repair"] == ["skipped"] and states["fleet_verdict"] == ["success"]
    assert {c: table_snapshot(ch, db) for c, db in DBS.items()} == before

    report = json.loads((reports_dir / FLEET / report_name(run.run_id)).read_text())
    assert report["dry_run"] is True and report["verdict"] == "DRY RUN"
    plans = {p["customer"]: p for p in report["plans"]}
    assert plans["sun-country"]["status"] == "REFUSED" and "2026-02-03" in plans["sun-country"]["problems"][0]
    for customer in ("alaska-air", "horizon-air"):
        plan = plans[customer]
        assert plan["status"] == "REPAIR" and plan["drifted_days"] == [
            "2026-02-02",
            "2026-02-03",
            "2026-02-04",
        ]
        assert plan["delete_rows"] > plan["rewrite_rows"] > 0  # the incident's duplicates and ineligible rows
    totals = report["totals"]
    assert totals == {
        "customers": 3,
        "to_repair": 2,
        "refused": 1,
        "not_checked": 0,
        "drifted_days": 9,
        "delete_rows": plans["alaska-air"]["delete_rows"] + plans["horizon-air"]["delete_rows"],
        "rewrite_rows": plans["alaska-air"]["rewrite_rows"] + plans["horizon-air"]["rewrite_rows"],
    }
    verdicts = {v["customer"]: v["verdict"] for v in report["customers"]}
    assert verdicts == {"alaska-air": "DRY RUN", "horizon-air": "DRY RUN", "sun-country": "REFUSED"}


def test_bad_input_is_refused_before_anything_is_read(incident, ch, airflow_db, capfd):
    run, states = run_dag(
        FLEET, {"customers": ["alaska-air"], "start_date": "2026-02-04", "end_date": "2026-02-02"}
    )
    assert str(run.state) == "failed" and states["validate"] == ["failed"]
    assert states["plan_customer"] == ["upstream_failed"]
    assert "nothing was read or deleted: invalid input: 'alaska-air': end_date" in "".join(capfd.readouterr())
