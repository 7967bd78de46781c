"""The backfill DAG end to end on the embedded stack (real Postgres server, real ClickHouse engine)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_dag

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
DB = "alaska_air_us_east_1"


@pytest.fixture
def incident(stack, ch, pg):
    from label_backfill.dev.simulate import simulate

    return simulate(pg, ch, scale_name="small", seed=7)


def compare_range(pg, ch, first: str, last: str, customer: str = "alaska-air", database: str = DB):
    import datetime as dt

    from label_backfill.compare import ClickHouseSide, PostgresSide, compare
    from label_backfill.naming import DayRange

    days = DayRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last))
    return compare(PostgresSide(pg), ClickHouseSide(ch, database), customer, days)


def conf(**overrides):
    return {"customer": "alaska-air", "start_date": "2026-02-01", "end_date": "2026-02-14", **overrides}


def test_backfill_repairs_the_incident_to_exact_equality(incident, pg, ch, airflow_db, reports_dir):
    before = compare_range(pg, ch, "2026-02-01", "2026-02-14")
    assert before.total("duplicates") > 0 and before.total("stale") > 0 and not before.ok

    run, states = run_dag(DAG_ID, conf())

    assert str(run.state) == "success", states
    assert states["label_day"] == ["success"] * 14
    after = compare_range(pg, ch, "2026-02-01", "2026-02-14")
    assert after.ok, after.render_text()
    assert after.total("ch_rows") == after.total("pg_eligible") == before.total("pg_eligible")
    report = json.loads((reports_dir / DAG_ID / f"{run.run_id}.json").read_text())
    assert report["ok"] is True
    assert [d["date"] for d in report["days"]][0] == "2026-02-01"
    assert {d["duplicates"] for d in report["days"]} == {0}
    assert report["before"]["totals"]["duplicates"] == before.total("duplicates")
    assert (reports_dir / DAG_ID / f"{run.run_id}.md").read_text().count("| 2026-02-") >= 28
