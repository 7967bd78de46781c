"""Mutation status decisions and the generated SQL of both modes (no cluster runs here: checked as text)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from label_backfill import sql
from label_backfill.clickhouse import LabelTable, MutationState, check_mutations
from label_backfill.naming import InvalidInput
from label_backfill.settings import load

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 2, 19, 1, 32, 49)


def row(host, mid, done, reason="", t=T0, command="DELETE WHERE x"):
    return {
        "host": host,
        "mutation_id": mid,
        "is_done": done,
        "latest_fail_reason": reason,
        "create_time": t,
        "command": command,
        "parts_to_do": 0 if done else 3,
    }


def statement(text: str) -> str:
    """The SQL without comment lines, whitespace folded."""
    return " ".join(
        " ".join(line for line in text.splitlines() if not line.lstrip().startswith("--")).split()
    )


def test_done_pending_failed():
    watched = [("s1", "m2"), ("s2", "m7")]
    assert check_mutations([row("s1", "m2", 1), row("s2", "m7", 1)], watched).state is MutationState.DONE
    pending = check_mutations([row("s1", "m2", 1), row("s2", "m7", 0)], watched)
    assert pending.state is MutationState.PENDING and pending.pending == ("s2:m7 (3 parts to do)",)
    failed = check_mutations(
        [row("s1", "m2", 0, "Code: 241 MEMORY_LIMIT_EXCEEDED"), row("s2", "m7", 1)], watched
    )
    assert (
        failed.state is MutationState.FAILED
        and "MEMORY_LIMIT_EXCEEDED" in failed.reason
        and "s1" in failed.reason
    )


def test_an_earlier_failed_mutation_blocks_ours():
    rows = [
        row("s1", "m1", 0, "boom", t=T0 - dt.timedelta(minutes=5), command="UPDATE x"),
        row("s1", "m2", 0),
    ]
    check = check_mutations(rows, [("s1", "m2")])
    assert check.state is MutationState.FAILED and "m1" in check.reason and "boom" in check.reason
    later = [row("s1", "m2", 0), row("s1", "m3", 0, "boom", t=T0 + dt.timedelta(minutes=5))]
    assert check_mutations(later, [("s1", "m2")]).state is MutationState.PENDING


def test_single_node_sql():
    table = LabelTable(None, "alaska_air_us_east_1")
    assert table.read_table == "conversation_with_labels"
    text = statement(table.delete_sql())
    assert text.startswith("ALTER TABLE alaska_air_us_east_1.conversation_with_labels DELETE WHERE")
    assert (
        "{customer_id:String}" in text and "{start:DateTime64(3, 'UTC')}" in text and "ON CLUSTER" not in text
    )
    assert "FROM system.mutations" in table.mutations_sql()


def test_cluster_sql_uses_on_cluster_all_replicas_and_distributed_reads():
    table = LabelTable(None, "alaska_air_us_east_1", cluster="conversations")
    assert table.read_table == "conversation_with_labels_d"
    delete = statement(table.delete_sql())
    assert delete.startswith(
        "ALTER TABLE alaska_air_us_east_1.conversation_with_labels ON CLUSTER conversations "
        "DELETE WHERE customer_id = {customer_id:String}"
    )
    assert "clusterAllReplicas('conversations', system.mutations)" in table.mutations_sql()
    replicated = sql.clickhouse(
        "create_table_replicated", database="alaska_air_us_east_1", cluster="conversations"
    )
    assert "ON CLUSTER conversations" in replicated and "ReplicatedReplacingMergeTree(" in replicated
    assert "'{replica}'" in replicated and "{shard}" in replicated
    distributed = sql.clickhouse(
        "create_table_distributed", database="alaska_air_us_east_1", cluster="conversations"
    )
    assert "Distributed(conversations, alaska_air_us_east_1, conversation_with_labels" in distributed
    summary = sql.clickhouse("day_summary", database="alaska_air_us_east_1", table=table.read_table)
    assert "FROM alaska_air_us_east_1.conversation_with_labels_d" in summary


@pytest.mark.parametrize("cluster", [None, "conversations"])
def test_the_comparison_reads_the_table_the_label_table_names(cluster):
    """One owner of the table's identity: the comparison side reads through its LabelTable, and the settings
    name the same table."""
    from label_backfill.compare import ClickHouseSide

    side = ClickHouseSide(None, "alaska_air_us_east_1", cluster)
    assert side.table.read_table == LabelTable(None, "alaska_air_us_east_1", cluster).read_table
    assert side.table.read_table == load({"LABEL_BACKFILL_CLICKHOUSE_CLUSTER": cluster or ""}).read_table
    assert side.database == "alaska_air_us_east_1"
    assert side.table.read_name == f"alaska_air_us_east_1.{side.table.read_table}"
    assert re.search(rf"FROM alaska_air_us_east_1\.{side.table.read_table}\b", side.table.read_sql("rows"))


def test_both_sides_are_comparison_sides():
    from label_backfill.compare import CheckedSide, ClickHouseSide, ComparisonSide, PostgresSide

    postgres, clickhouse = PostgresSide(None), ClickHouseSide(None, "alaska_air_us_east_1")
    assert isinstance(postgres, ComparisonSide) and isinstance(clickhouse, ComparisonSide)
    assert isinstance(clickhouse, CheckedSide) and not isinstance(postgres, CheckedSide)
    assert not isinstance(LabelTable(None, "alaska_air_us_east_1"), ComparisonSide)


def test_identifiers_are_validated_before_splicing():
    with pytest.raises(InvalidInput):
        LabelTable(None, "alaska; DROP DATABASE x")
    with pytest.raises(InvalidInput):
        LabelTable(None, "alaska_air_us_east_1", cluster="c' OR 1")
    with pytest.raises(InvalidInput):
        sql.clickhouse("day_summary", database="x", table="t WHERE 1")


def test_settings_from_environment():
    s = load({"LABEL_BACKFILL_CLICKHOUSE_CLUSTER": "conversations", "LABEL_BACKFILL_JOB_RUNNER": "local"})
    assert (s.clickhouse_cluster, s.read_table, s.job_runner, s.cronjob) == (
        "conversations",
        "conversation_with_labels_d",
        "local",
        "cron-label-conversations",
    )
    with pytest.raises(ValueError, match="LABEL_BACKFILL_JOB_RUNNER"):
        load({"LABEL_BACKFILL_JOB_RUNNER": "ssh"})


def test_the_tasks_build_both_sides_through_the_hooks_on_the_deployments_cluster(monkeypatch):
    from label_backfill import hooks
    from label_backfill.sides import Sides

    monkeypatch.setattr(hooks, "clickhouse_client", lambda: "client")
    monkeypatch.setattr(hooks, "postgres_side", lambda: "postgres side")
    sides = Sides.of(load({"LABEL_BACKFILL_CLICKHOUSE_CLUSTER": "conversations"}))
    side = sides.clickhouse("alaska_air_us_east_1")
    assert (side.table.client, side.table.cluster) == ("client", "conversations")
    assert side.table.read_table == "conversation_with_labels_d"
    assert sides.postgres() == "postgres side"
