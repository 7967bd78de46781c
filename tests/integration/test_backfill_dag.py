"""The backfill DAG end to end on the embedded stack (real Postgres server, real ClickHouse engine)."""

from __future__ import annotations

import json

import pytest

from tests.helpers import report_name, run_dag, table_snapshot

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
DB = "alaska_air_us_east_1"


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
    shown = {
        ti.map_index: ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "label_day"
    }
    assert shown[0] == "2026-02-01" and shown[13] == "2026-02-14"  # the grid names each day by its date
    after = compare_range(pg, ch, "2026-02-01", "2026-02-14")
    assert after.ok, after.render_text()
    assert after.total("ch_rows") == after.total("pg_eligible") == before.total("pg_eligible")
    report = json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())
    assert report["ok"] is True
    assert [d["date"] for d in report["days"]][0] == "2026-02-01"
    assert {d["duplicates"] for d in report["days"]} == {0}
    assert report["before"]["totals"]["duplicates"] == before.total("duplicates")
    assert (reports_dir / DAG_ID / report_name(run.run_id, ".md")).read_text().count("| 2026-02-") >= 28


def outside(ch, first: str, last: str, database: str = DB):
    """Every row of the table outside [first, last], byte for byte (labeled_at included)."""
    return ch.query(
        f"SELECT * FROM {database}.conversation_with_labels WHERE toDate(conversation_start_time) < '{first}' "
        f"OR toDate(conversation_start_time) > '{last}' ORDER BY conversation_id, labeled_at, agent_user_id"
    ).result_rows


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"customer": "nobody-here"}, "customer: no profile 'nobody-here'"),
        ({"start_date": "2026-02-10", "end_date": "2026-02-01"}, "end_date: 2026-02-01 is before start_date"),
        ({"end_date": "2099-01-01", "max_days": 366}, "end_date: 2099-01-01 is not a finished UTC day"),
        ({"start_date": "2025-01-01", "end_date": "2026-02-14"}, "over max_days=62"),
        ({"dryrun": True}, "unknown param 'dryrun' (did you mean 'dry_run'?)"),
        # the form holds no pattern (its message would dump the regex): validate says what an id looks like
        ({"customer": "Alaska_Air"}, "customer: 'Alaska_Air' is not a customer id"),
        # the form holds no bounds (its number input would clamp 40 to 16): validate refuses, never clamps
        ({"max_parallel_days": 40}, "max_parallel_days: 40 must be a whole number from 1 to 16"),
        ({"max_delete_ratio": 0.5}, "max_delete_ratio: 0.5 must be a number >= 1"),
    ],
)
def test_bad_input_fails_at_validate_before_any_delete(incident, ch, airflow_db, bad, message, capfd):
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf(**bad))
    assert str(run.state) == "failed"
    assert states["validate"] == ["failed"]
    assert states["delete_range"] == ["upstream_failed"]
    assert set(states.get("label_day", ["upstream_failed"])) == {"upstream_failed"}
    assert message in "".join(capfd.readouterr())
    assert table_snapshot(ch, DB) == before


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"start_date": "2026-13-01"}, "Invalid input for param start_date"),
        ({"max_parallel_days": "many"}, "Invalid input for param max_parallel_days"),
    ],
)
def test_bad_input_the_form_refuses_never_starts_a_run(incident, ch, airflow_db, bad, message):
    from airflow.sdk.exceptions import ParamValidationError

    before = table_snapshot(ch, DB)
    with pytest.raises(ParamValidationError, match=message):
        run_dag(DAG_ID, conf(**bad))
    assert table_snapshot(ch, DB) == before


def test_dry_run_changes_nothing_and_reports(incident, ch, airflow_db, reports_dir):
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf(dry_run=True))
    assert str(run.state) == "success"
    assert states["delete_range"] == ["skipped"] and states["verify"] == ["skipped"]
    assert table_snapshot(ch, DB) == before
    report = json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())
    assert report["dry_run"] is True and report["ok"] is False and report["after"] is None
    assert report["before"]["totals"]["duplicates"] > 0


def test_partial_range_keeps_other_days_and_a_second_run_changes_nothing(incident, pg, ch, airflow_db):
    untouched = outside(ch, "2026-02-05", "2026-02-09")
    run, states = run_dag(DAG_ID, conf(start_date="2026-02-05", end_date="2026-02-09", max_parallel_days=2))
    assert str(run.state) == "success", states
    assert outside(ch, "2026-02-05", "2026-02-09") == untouched
    assert compare_range(pg, ch, "2026-02-05", "2026-02-09").ok
    assert not compare_range(pg, ch, "2026-02-01", "2026-02-04").ok  # never repaired: still drifted

    def visible():
        return ch.query(
            f"SELECT * EXCEPT labeled_at FROM {DB}.conversation_with_labels ORDER BY ALL"
        ).result_rows

    repaired = visible()
    run, _ = run_dag(DAG_ID, conf(start_date="2026-02-05", end_date="2026-02-09"))
    assert str(run.state) == "success" and visible() == repaired


def test_start_day_rule_at_the_midnight_boundary(pg, ch, airflow_db):
    from tests.crafted import add_conversations, at, label_range, make_customer

    db = make_customer(pg, ch, "edge-air")
    add_conversations(
        pg,
        "edge-air",
        [
            ("late", 0, "cco", "voice", at("2026-02-01", "23:59:59.999"), at("2026-02-02", "00:30:00")),
            ("early", 1, "cco", "voice", at("2026-02-02", "00:00:00"), at("2026-02-02", "00:10:00")),
        ],
    )
    label_range(pg, ch, "edge-air", at("2026-02-01", "00:00:00"), at("2026-02-03", "00:00:00"))
    with pg.cursor() as cur:
        cur.execute("UPDATE conversations SET agent_user_id = 'edge-air-a2' WHERE customer_id = 'edge-air'")
    pg.commit()
    run, _ = run_dag(DAG_ID, {"customer": "edge-air", "start_date": "2026-02-02", "end_date": "2026-02-02"})
    assert str(run.state) == "success"
    labels = dict(
        ch.query(f"SELECT conversation_id, agent_user_id FROM {db}.conversation_with_labels").result_rows
    )
    assert labels == {"late": "edge-air-a0", "early": "edge-air-a2"}  # 'late' belongs to its start day, Feb 1
    run, _ = run_dag(DAG_ID, {"customer": "edge-air", "start_date": "2026-02-01", "end_date": "2026-02-01"})
    labels = dict(
        ch.query(f"SELECT conversation_id, agent_user_id FROM {db}.conversation_with_labels").result_rows
    )
    assert str(run.state) == "success" and labels == {"late": "edge-air-a2", "early": "edge-air-a2"}


def test_a_day_that_fails_after_a_partial_write_is_exact_after_its_retry(
    incident, pg, ch, airflow_db, monkeypatch
):
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_DAYS", "2026-02-03")
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS", "1")  # first attempt dies after one block
    run, states = run_dag(DAG_ID, conf(start_date="2026-02-02", end_date="2026-02-04"))
    assert str(run.state) == "success", states
    tries = {ti.map_index: ti.try_number for ti in run.get_task_instances() if ti.task_id == "label_day"}
    assert tries == {0: 1, 1: 2, 2: 1}
    assert compare_range(pg, ch, "2026-02-02", "2026-02-04").ok


def test_a_day_that_keeps_failing_fails_the_run_at_verify_naming_it(
    incident, pg, ch, airflow_db, monkeypatch, reports_dir
):
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_DAYS", "2026-02-03")
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS", "9")
    run, states = run_dag(DAG_ID, conf(start_date="2026-02-02", end_date="2026-02-04"))
    assert str(run.state) == "failed"
    assert states["label_day"] == ["success", "failed", "success"] and states["verify"] == ["failed"]
    report = json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())
    assert report["failed_days"] == ["2026-02-03"]
    assert any("2026-02-03" in p for p in report["problems"])
    assert [d["ok"] for d in report["days"]] == [True, False, True]  # the partial day is not exact

    # Rerunning the day (as a clear from the UI does) repairs it: a fresh run without the fault.
    monkeypatch.delenv("LABEL_BACKFILL_LOCAL_FAIL_DAYS")
    run, _ = run_dag(DAG_ID, conf(start_date="2026-02-03", end_date="2026-02-03"))
    assert str(run.state) == "success" and compare_range(pg, ch, "2026-02-02", "2026-02-04").ok


def test_a_failing_mutation_stops_the_run_before_any_day_job(incident, ch, airflow_db, capfd):
    # A mutation ahead of ours that can never finish: ClickHouse runs mutations in order.
    ch.command(
        f"ALTER TABLE {DB}.conversation_with_labels UPDATE usecase_id = toString(throwIf(1, 'disk on fire')) "
        "WHERE 1",
        settings={"mutations_sync": 0},
    )
    try:
        before = table_snapshot(ch, DB)
        run, states = run_dag(DAG_ID, conf(start_date="2026-02-02", end_date="2026-02-03"))
        assert str(run.state) == "failed"
        assert states["wait_for_mutations"] == ["failed"]
        assert set(states["label_day"]) == {"upstream_failed"}
        assert "disk on fire" in "".join(capfd.readouterr())
        assert len(table_snapshot(ch, DB)) == len(before)  # the delete never completed
    finally:
        ch.command(f"KILL MUTATION WHERE database = '{DB}'")


def test_guard_refuses_to_delete_days_postgres_reports_empty(incident, pg, ch, airflow_db, capfd):
    with pg.cursor() as cur:  # an outage-like source: no eligible conversations on Feb 6
        cur.execute(
            "UPDATE conversations SET ended_at = NULL WHERE customer_id = 'alaska-air' "
            "AND started_at >= '2026-02-06' AND started_at < '2026-02-07'"
        )
    pg.commit()
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf(start_date="2026-02-05", end_date="2026-02-07"))
    assert str(run.state) == "failed" and states["preflight"] == ["failed"]
    assert set(states["delete_range"]) == {"upstream_failed"}
    log = "".join(capfd.readouterr())
    assert "refusing to delete" in log and "2026-02-06" in log and "allow_empty_source" in log
    assert table_snapshot(ch, DB) == before

    run, _ = run_dag(DAG_ID, conf(start_date="2026-02-05", end_date="2026-02-07", allow_empty_source=True))
    assert str(run.state) == "success" and compare_range(pg, ch, "2026-02-05", "2026-02-07").ok
