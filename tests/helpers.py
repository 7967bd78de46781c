"""Shared test helpers: run a DAG with dag.test() and read task states; a byte-level ClickHouse snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def load_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(dag_id: str, conf: dict[str, Any]) -> tuple[Any, dict[str, list[str]]]:
    """Run a DAG in-process; return the run and {task_id: [state of each (mapped) instance]}."""
    dag = load_dag(dag_id)
    run = dag.test(run_conf=conf)
    states: dict[str, list[str]] = {}
    for ti in sorted(run.get_task_instances(), key=lambda t: (t.task_id, t.map_index)):
        states.setdefault(ti.task_id, []).append(str(ti.state))
    return run, states


def table_snapshot(ch: Any, database: str, table: str = "conversation_with_labels") -> list[tuple]:
    """Every row of a ClickHouse table, labeled_at included, sorted: equal snapshots = unchanged table."""
    return ch.query(
        f"SELECT * FROM {database}.{table} ORDER BY conversation_id, labeled_at, agent_user_id"
    ).result_rows


def oracle_mismatches(pg: Any, ch: Any, customer: str, database: str, first: str, last: str) -> list[str]:
    """Independent of the package's comparison: read both tables in plain SQL and check, over the WHOLE
    ClickHouse table, every conversation that starts in [first, last] in Postgres or has a ClickHouse row
    starting there: exactly one row with Postgres's labels if eligible, none if not. Returns the mismatches."""
    import datetime as dt

    def ms(value: dt.datetime) -> int:  # ClickHouse keeps milliseconds: compare at that precision
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)

    with pg.cursor() as cur:
        cur.execute(
            "SELECT c.conversation_id, c.agent_user_id, c.usecase_id, c.source, c.started_at, c.ended_at "
            "FROM conversations c JOIN users u ON u.user_id = c.agent_user_id "
            "WHERE c.customer_id = %s AND c.ended_at IS NOT NULL AND c.source IN ('voice', 'chat') "
            "AND NOT u.is_dev_user",
            (customer,),
        )
        truth = {r[0]: (r[1], r[2], r[3], ms(r[4]), ms(r[5])) for r in cur.fetchall()}
        cur.execute(
            "SELECT conversation_id FROM conversations WHERE customer_id = %s "
            "AND (started_at AT TIME ZONE 'UTC')::date BETWEEN %s AND %s",
            (customer, first, last),
        )
        in_range_pg = {r[0] for r in cur.fetchall()}
    pg.rollback()
    stored: dict[str, list[tuple]] = {}
    in_range_ch = set()
    for cid, agent, usecase, source, start, end in ch.query(
        f"SELECT conversation_id, agent_user_id, usecase_id, toString(source), conversation_start_time, "
        f"conversation_end_time FROM {database}.conversation_with_labels WHERE customer_id = {{c:String}}",
        parameters={"c": customer},
    ).result_rows:
        stored.setdefault(cid, []).append((agent, usecase, source, ms(start), ms(end)))
        if first <= start.date().isoformat() <= last:
            in_range_ch.add(cid)
    problems = []
    for cid in sorted((in_range_pg & set(truth)) | in_range_ch):
        expected = [truth[cid]] if cid in truth else []
        if sorted(stored.get(cid, [])) != expected:
            problems.append(f"{cid}: ClickHouse {stored.get(cid, [])} != Postgres {expected}")
    return problems


def report_name(run_id: str, suffix: str = ".json") -> str:
    """The file name of a run's report (run ids made safe for every store: ``reports.safe_name``)."""
    from label_backfill.reports import safe_name

    return safe_name(run_id) + suffix
