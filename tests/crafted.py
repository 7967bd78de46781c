"""Small hand-made customers for exact expectations (real Postgres rows, real ClickHouse tables)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from label_backfill.clickhouse import LabelTable

T = dt.UTC


def at(day: str, hhmmss: str = "12:00:00") -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmmss}").replace(tzinfo=T)


def make_customer(
    pg: Any,
    ch: Any,
    customer: str,
    region: str = "us-east-1",
    *,
    agents: int = 3,
    dev_agents: tuple[int, ...] = (),
    dedup_window: int | None = None,
) -> str:
    """(Re)create an empty customer on both sides; return its ClickHouse database."""
    database = f"{customer}_{region}".replace("-", "_")
    with pg.cursor() as cur:
        for table in ("conversations", "users", "profiles"):
            cur.execute(f"DELETE FROM {table} WHERE customer_id = %s", (customer,))
        cur.execute("INSERT INTO profiles VALUES (%s, %s)", (customer, region))
        for i in range(agents):
            cur.execute(
                "INSERT INTO users VALUES (%s, %s, %s)", (f"{customer}-a{i}", customer, i in dev_agents)
            )
    pg.commit()
    ch.command(f"DROP DATABASE IF EXISTS {database}")
    LabelTable(ch, database).create(dedup_window=dedup_window)
    return database


def add_conversations(pg: Any, customer: str, rows: list[tuple]) -> None:
    """rows: (conversation_id, agent index, usecase, source, started_at, ended_at or None)."""
    with pg.cursor() as cur:
        for cid, agent, usecase, source, started, ended in rows:
            cur.execute(
                "INSERT INTO conversations VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (cid, customer, f"{customer}-a{agent}", usecase, source, started, ended),
            )
    pg.commit()


def label_range(pg: Any, ch: Any, customer: str, start: dt.datetime, end: dt.datetime, **kw: Any) -> int:
    """Run the job in range mode (through its own ADBC connection, as in production)."""
    from label_conversations import JobConfig, connect_postgres, run

    with connect_postgres(pg.info.dsn) as job_pg:
        return run(JobConfig(customer=customer, range_start=start, range_end=end), job_pg, ch, **kw).rows


def reset_all(pg: Any, ch: Any) -> None:
    """Forget every customer on both sides (tests that check 'every profile')."""
    with pg.cursor() as cur:
        cur.execute("TRUNCATE conversations, users, profiles")
    pg.commit()
    for (name,) in ch.query(
        "SELECT name FROM system.databases WHERE name NOT IN "
        "('system', 'default', 'INFORMATION_SCHEMA', 'information_schema')"
    ).result_rows:
        ch.command(f"DROP DATABASE IF EXISTS `{name}`")


def relabel(pg: Any, ch: Any, customer: str, database: str, start: dt.datetime, end: dt.datetime) -> None:
    """Make a customer's range exact the way a backfill does: delete, then rewrite."""
    ch.command(
        f"ALTER TABLE {database}.conversation_with_labels DELETE WHERE customer_id = {{c:String}}",
        parameters={"c": customer},
        settings={"mutations_sync": 2},
    )
    label_range(pg, ch, customer, start, end)
