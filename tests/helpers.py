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
