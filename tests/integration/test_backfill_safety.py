"""Green means checked and equal (issue 9): each case here once ended green without having checked, or
changed data it did not rewrite. Real Postgres server, real ClickHouse engine, ``dag.test()``; the end state
is judged by an independent oracle (plain SQL on both tables), not only by the package's own comparison."""

from __future__ import annotations

import json
import time

import pytest

from tests.crafted import add_conversations, at, label_range, make_customer
from tests.helpers import oracle_mismatches, report_name, run_dag, table_snapshot

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
DB = "alaska_air_us_east_1"


def conf(**overrides):
    return {"customer": "alaska-air", "start_date": "2026-02-02", "end_date": "2026-02-04", **overrides}


def report_of(reports_dir, run) -> dict:
    return json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())


def our_pending_mutations(ch, database: str = DB) -> list[tuple]:
    return ch.query(
        "SELECT mutation_id, command FROM system.mutations WHERE database = {d:String} AND NOT is_done "
        "AND command LIKE '%DELETE%'",
        parameters={"d": database},
    ).result_rows


def wait_until_no_mutation_pending(ch, database: str = DB, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ch.query(
        "SELECT count() FROM system.mutations WHERE database = {d:String} AND NOT is_done",
        parameters={"d": database},
    ).result_rows[0][0]:
        assert time.monotonic() < deadline, "a mutation is still running"
        time.sleep(0.2)


# --- 2. unknown param keys --------------------------------------------------------------------------------


def test_a_misspelt_param_is_refused_naming_it_before_any_delete(incident, ch, airflow_db, capfd):
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf(dryrun=True))  # a typo of dry_run: must never run a real delete
    assert str(run.state) == "failed" and states["validate"] == ["failed"]
    assert set(states["delete_range"]) == {"upstream_failed"}
    assert "unknown param 'dryrun' (did you mean 'dry_run'?)" in "".join(capfd.readouterr())
    assert table_snapshot(ch, DB) == before


# --- 3. no orphan delete ----------------------------------------------------------------------------------


def test_a_blocked_delete_is_killed_so_following_the_troubleshooting_loses_nothing(
    incident, ch, airflow_db, capfd, reports_dir
):
    # A mutation ahead of ours that can never finish: ClickHouse runs mutations in order.
    ch.command(
        f"ALTER TABLE {DB}.conversation_with_labels UPDATE usecase_id = toString(throwIf(1, 'disk on fire')) "
        "WHERE 1",
        settings={"mutations_sync": 0},
    )
    before = table_snapshot(ch, DB)
    try:
        run, states = run_dag(DAG_ID, conf())
        assert str(run.state) == "failed" and states["wait_for_mutations"] == ["failed"]
        assert set(states["label_day"]) == {"upstream_failed"} and states["verify"] == ["failed"]
        log = "".join(capfd.readouterr())
        assert "disk on fire" in log and "killed our pending delete" in log
        assert our_pending_mutations(ch) == []  # only the broken UPDATE is left
        report = report_of(reports_dir, run)
        assert report["verdict"] == "NOT REPAIRED" and report["ok"] is False
        assert report["after"]["totals"]["ch_rows"] == report["before"]["totals"]["ch_rows"]
    finally:
        # What the README tells an operator to do next: kill the broken mutation.
        ch.command(f"KILL MUTATION WHERE database = '{DB}'")
    wait_until_no_mutation_pending(ch)
    assert table_snapshot(ch, DB) == before  # our delete did not run after the blocker went away


def test_a_delete_that_times_out_is_killed_and_the_range_left_whole(
    incident, ch, airflow_db, monkeypatch, capfd
):
    from label_backfill.clickhouse import LabelTable

    monkeypatch.setenv("LABEL_BACKFILL_MUTATION_TIMEOUT_SECONDS", "1")
    real = LabelTable.delete_range

    def behind_a_slow_mutation(self, *args, **kwargs):  # ~7 s of work queued just ahead of our delete
        self.client.command(
            f"ALTER TABLE {DB}.conversation_with_labels UPDATE usecase_id = if(sleepEachRow(0.0002) = 0, "
            "usecase_id, usecase_id) WHERE 1",
            settings={"mutations_sync": 0},
        )
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LabelTable, "delete_range", behind_a_slow_mutation)
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "failed" and states["wait_for_mutations"] == ["failed"]
    wait_until_no_mutation_pending(ch)
    assert our_pending_mutations(ch) == [] and table_snapshot(ch, DB) == before
    assert "killed our pending delete" in "".join(capfd.readouterr())


def test_a_delete_accepted_despite_an_error_goes_on_to_rewrite(incident, pg, ch, airflow_db, monkeypatch):
    from label_backfill.clickhouse import LabelTable

    real = LabelTable.mutations
    calls = {"n": 0}

    def flaky(self):  # the listing right after the ALTER fails once: ClickHouse accepted the delete anyway
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("connection reset by peer")
        return real(self)

    monkeypatch.setattr(LabelTable, "mutations", flaky)
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "success", states
    assert oracle_mismatches(pg, ch, "alaska-air", DB, "2026-02-02", "2026-02-04") == []


# --- 4. the guard measures loss, not duplicates --------------------------------------------------------------


def test_a_day_written_three_times_is_repaired_with_defaults(pg, ch, airflow_db):
    db = make_customer(pg, ch, "triple-air")
    add_conversations(
        pg,
        "triple-air",
        [
            (
                f"t{i}",
                i % 3,
                "cco",
                "voice",
                at("2026-02-02", f"1{i % 10}:00:00"),
                at("2026-02-02", "21:00:00"),
            )
            for i in range(30)
        ],
    )
    for _ in range(3):  # the seeds' incident: re-runs without a delete
        label_range(pg, ch, "triple-air", at("2026-02-02", "00:00:00"), at("2026-02-03", "00:00:00"))
    assert ch.query(f"SELECT count() FROM {db}.conversation_with_labels").result_rows[0][0] == 90
    run, states = run_dag(
        DAG_ID, {"customer": "triple-air", "start_date": "2026-02-02", "end_date": "2026-02-02"}
    )
    assert str(run.state) == "success", states
    assert oracle_mismatches(pg, ch, "triple-air", db, "2026-02-02", "2026-02-02") == []


def test_a_day_postgres_only_partly_has_is_refused_per_day(incident, pg, ch, airflow_db, capfd):
    with pg.cursor() as cur:  # a lagging source: ~90% of Feb 3 not (yet) there; the 3-day total looks fine
        cur.execute(
            "UPDATE conversations SET ended_at = NULL WHERE customer_id = 'alaska-air' AND started_at >= "
            "'2026-02-03' AND started_at < '2026-02-04' AND right(conversation_id, 1) <> '7'"
        )
    pg.commit()
    before = table_snapshot(ch, DB)
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "failed" and states["preflight"] == ["failed"]
    log = "".join(capfd.readouterr())
    assert "refusing to delete" in log and "2026-02-03 (" in log and "max_delete_ratio" in log
    assert "2026-02-02 (" not in log.split("refusing to delete")[1].split("\n")[0]
    assert table_snapshot(ch, DB) == before


# --- 5. conversations whose start day moved ----------------------------------------------------------------


def _moving_customer(pg, ch):
    db = make_customer(pg, ch, "move-air")
    add_conversations(
        pg,
        "move-air",
        [
            ("stays", 0, "cco", "voice", at("2026-02-03"), at("2026-02-03", "13:00:00")),
            ("comes-in", 0, "cco", "voice", at("2026-01-20"), at("2026-01-20", "13:00:00")),
            ("goes-out", 1, "cco", "chat", at("2026-02-03", "09:00:00"), at("2026-02-03", "10:00:00")),
            ("neighbour", 2, "cco", "chat", at("2026-02-01", "23:59:59.999"), at("2026-02-02", "00:30:00")),
        ],
    )
    label_range(pg, ch, "move-air", at("2026-01-01", "00:00:00"), at("2026-03-01", "00:00:00"))
    return db


def test_a_conversation_whose_start_moved_into_the_range_ends_with_one_row(pg, ch, airflow_db):
    db = _moving_customer(pg, ch)
    with pg.cursor() as cur:  # Postgres corrected the start of 'comes-in' into the range, and relabelled it
        cur.execute(
            "UPDATE conversations SET started_at = '2026-02-03 08:00Z', ended_at = '2026-02-03 08:30Z', "
            "agent_user_id = 'move-air-a2' WHERE conversation_id = 'comes-in'"
        )
    pg.commit()
    untouched = ch.query(
        f"SELECT * FROM {db}.conversation_with_labels WHERE conversation_id = 'neighbour'"
    ).result_rows
    run, states = run_dag(
        DAG_ID, {"customer": "move-air", "start_date": "2026-02-02", "end_date": "2026-02-04"}
    )
    assert str(run.state) == "success", states
    rows = ch.query(f"SELECT conversation_id FROM {db}.conversation_with_labels ORDER BY 1").result_rows
    assert rows == [("comes-in",), ("goes-out",), ("neighbour",), ("stays",)]  # the Jan 20 copy is gone
    assert oracle_mismatches(pg, ch, "move-air", db, "2026-02-02", "2026-02-04") == []
    neighbour = f"SELECT * FROM {db}.conversation_with_labels WHERE conversation_id = 'neighbour'"
    assert ch.query(neighbour).result_rows == untouched  # outside the range: byte for byte


def test_a_conversation_whose_start_moved_out_of_the_range_is_refused_naming_the_day(
    pg, ch, airflow_db, capfd
):
    db = _moving_customer(pg, ch)
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE conversations SET started_at = '2026-02-10 09:00Z', ended_at = '2026-02-10 10:00Z' "
            "WHERE conversation_id = 'goes-out'"
        )
    pg.commit()
    before = table_snapshot(ch, db)
    run, states = run_dag(
        DAG_ID, {"customer": "move-air", "start_date": "2026-02-02", "end_date": "2026-02-04"}
    )
    assert str(run.state) == "failed" and states["preflight"] == ["failed"]
    log = "".join(capfd.readouterr())
    assert "goes-out (2026-02-10)" in log and "Add these day(s) to the range: 2026-02-10" in log
    assert table_snapshot(ch, db) == before

    run, states = run_dag(
        DAG_ID, {"customer": "move-air", "start_date": "2026-02-02", "end_date": "2026-02-10"}
    )
    assert str(run.state) == "success", states
    assert oracle_mismatches(pg, ch, "move-air", db, "2026-02-02", "2026-02-10") == []


def test_verify_fails_when_the_delete_crosses_the_start_day_boundary(pg, ch, airflow_db, monkeypatch, capfd):
    """A delete by end time would drop 'neighbour' (starts Feb 1 23:59:59.999, ends Feb 2): verify must see
    the day before the range change, not only the range's own counts."""
    from label_backfill.clickhouse import LabelTable

    db = _moving_customer(pg, ch)
    real = LabelTable.delete_sql
    monkeypatch.setattr(
        LabelTable,
        "delete_sql",
        lambda self: real(self).replace("conversation_start_time", "conversation_end_time"),
    )
    run, states = run_dag(
        DAG_ID, {"customer": "move-air", "start_date": "2026-02-02", "end_date": "2026-02-04"}
    )
    assert str(run.state) == "failed" and states["verify"] == ["failed"]
    assert "rows outside the range changed on 2026-02-01" in "".join(capfd.readouterr())
    assert oracle_mismatches(pg, ch, "move-air", db, "2026-02-01", "2026-02-01") != []  # the oracle agrees


# --- 6. verify always leaves a report ----------------------------------------------------------------------


def test_when_postgres_dies_after_the_delete_verify_reports_what_clickhouse_holds(
    incident, ch, airflow_db, monkeypatch, reports_dir, capfd
):
    import psycopg
    from label_backfill import hooks

    real = hooks.postgres_connection
    calls = {"n": 0}

    def dying(*args, **kwargs):  # validate and preflight reach Postgres; from verify on it is gone
        if (args or [kwargs.get("conn_id")])[0] == "label_backfill_state":
            return real(*args, **kwargs)  # the lease store is another database
        calls["n"] += 1
        if calls["n"] > 2:
            raise psycopg.OperationalError("connection to server failed: Connection refused")
        return real(*args, **kwargs)

    monkeypatch.setattr(hooks, "postgres_connection", dying)
    run, states = run_dag(DAG_ID, conf())
    assert str(run.state) == "failed" and states["verify"] == ["failed"]
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries["verify"] > 1  # it retried before giving up
    assert "is NOT VERIFIED" in "".join(capfd.readouterr())
    report = report_of(reports_dir, run)
    assert report["verdict"] == "NOT VERIFIED" and report["ok"] is False and report["verified"] is False
    assert [d["date"] for d in report["days"]] == ["2026-02-02", "2026-02-03", "2026-02-04"]
    assert all(d["ch_rows"] > 0 for d in report["days"])  # what ClickHouse holds now, day by day
    assert "Connection refused" in report["problems"][0]
