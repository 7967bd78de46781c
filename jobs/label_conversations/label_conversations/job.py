"""label-conversations: copy eligible conversations from Postgres into ClickHouse ``conversation_with_labels``.

A faithful, fast stand-in for the production Go image, with the same environment contract:

- ``LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START`` / ``..._END`` (RFC 3339): when
  both are set, label exactly the eligible conversations whose start is in [start, end) (range mode).
  Otherwise label those started since the customer's watermark, then move the watermark (watermark mode,
  which never revisits older conversations: the root cause of stale labels).
- ``FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE``: one customer id; unset = every profile.

Connection settings (ours; the Go image has its own):

- ``LABEL_CONVERSATIONS_POSTGRES_DSN``: libpq connection string or URI of the conversations database.
- ``LABEL_CONVERSATIONS_CLICKHOUSE_DSN``: clickhouse-connect DSN (``http://user:pw@host:8123``,
  ``chdb:///abs/path`` for the embedded engine).
- ``LABEL_CONVERSATIONS_CLICKHOUSE_TABLE``: ``conversation_with_labels`` (default) or, on a cluster,
  ``conversation_with_labels_d``.
- ``LABEL_CONVERSATIONS_NOW``: RFC 3339 upper bound of watermark mode (default: the clock; simulations).
- ``LABEL_CONVERSATIONS_SLICE_HOURS``: hours of conversation start read and inserted per block (default 24).

Rows are streamed slice by slice (Postgres -> Arrow through ADBC -> ClickHouse ``insert_arrow``): memory is
bounded by one slice, never the whole range.
Every block carries an ``insert_deduplication_token`` unique to this run: a delete-then-rewrite of identical
data is never silently dropped by ClickHouse's insert deduplication, while a retried block of the same run
still is.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger("label_conversations")

ENV_RANGE_START = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
ENV_RANGE_END = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
ENV_CUSTOMER = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"
ENV_POSTGRES_DSN = "LABEL_CONVERSATIONS_POSTGRES_DSN"
ENV_CLICKHOUSE_DSN = "LABEL_CONVERSATIONS_CLICKHOUSE_DSN"
ENV_CLICKHOUSE_TABLE = "LABEL_CONVERSATIONS_CLICKHOUSE_TABLE"
ENV_NOW = "LABEL_CONVERSATIONS_NOW"
ENV_SLICE_HOURS = "LABEL_CONVERSATIONS_SLICE_HOURS"

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Eligibility per the data contract. Values are bound ($1..$3); one query per slice of start time, because
# ADBC returns a parameterised result as one batch.
_SELECT_SQL = """
SELECT c.customer_id, c.conversation_id, c.agent_user_id, c.usecase_id, c.source,
       c.started_at AS conversation_start_time, c.ended_at AS conversation_end_time
FROM conversations c
JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
WHERE c.customer_id = $1
  AND c.ended_at IS NOT NULL
  AND c.source IN ('voice', 'chat')
  AND c.started_at >= $2
  AND c.started_at < $3
"""
_MS_UTC = pa.timestamp("ms", tz="UTC")
_WATERMARK_TABLE = "label_conversations_watermark"


class JobConfigError(ValueError):
    """The environment does not describe a runnable job."""


@dataclass(frozen=True)
class JobConfig:
    customer: str | None = None
    range_start: dt.datetime | None = None
    range_end: dt.datetime | None = None
    table: str = "conversation_with_labels"
    now: dt.datetime | None = None
    slice_hours: int = 24

    @property
    def range_mode(self) -> bool:
        return self.range_start is not None

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ[str]) -> JobConfig:
        start, end = env.get(ENV_RANGE_START, "").strip(), env.get(ENV_RANGE_END, "").strip()
        if bool(start) != bool(end):
            raise JobConfigError(f"set both {ENV_RANGE_START} and {ENV_RANGE_END}, or neither")
        table = env.get(ENV_CLICKHOUSE_TABLE, "").strip() or "conversation_with_labels"
        now = env.get(ENV_NOW, "").strip()
        return cls(
            customer=env.get(ENV_CUSTOMER, "").strip() or None,
            range_start=parse_rfc3339(start, ENV_RANGE_START) if start else None,
            range_end=parse_rfc3339(end, ENV_RANGE_END) if end else None,
            table=table,
            now=parse_rfc3339(now, ENV_NOW) if now else None,
            slice_hours=int(env.get(ENV_SLICE_HOURS, "").strip() or 24),
        )

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.table):
            raise JobConfigError(f"{ENV_CLICKHOUSE_TABLE}: {self.table!r} is not a table name")
        if self.range_start and self.range_end and self.range_end <= self.range_start:
            raise JobConfigError(f"{ENV_RANGE_END} must be after {ENV_RANGE_START}")
        if self.slice_hours < 1:
            raise JobConfigError(f"{ENV_SLICE_HOURS} must be at least 1")


@dataclass
class CustomerResult:
    customer: str
    database: str
    start: dt.datetime
    end: dt.datetime
    rows: int = 0
    blocks: int = 0
    seconds: float = 0.0


@dataclass
class RunResult:
    run_id: str
    customers: list[CustomerResult] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.customers)


def parse_rfc3339(value: str, name: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise JobConfigError(f"{name}: {value!r} is not an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise JobConfigError(f"{name}: {value!r} has no UTC offset")
    return parsed.astimezone(dt.UTC)


def database_name(customer_id: str, region: str) -> str:
    name = f"{customer_id}_{region}".replace("-", "_")
    if not _IDENTIFIER.fullmatch(name):
        raise JobConfigError(f"profile {customer_id!r}/{region!r} does not map to a database name")
    return name


def _with_labeled_at(rows: pa.Table, labeled_at_ms: int) -> pa.Table:
    """The slice as ClickHouse rows: timestamps at DateTime64(3) precision (truncated), ``labeled_at`` added."""
    return pa.table(
        {
            **{
                name: rows.column(name)
                for name in ("customer_id", "conversation_id", "agent_user_id", "usecase_id", "source")
            },
            "conversation_start_time": rows.column("conversation_start_time").cast(_MS_UTC, safe=False),
            "conversation_end_time": rows.column("conversation_end_time").cast(_MS_UTC, safe=False),
            "labeled_at": pa.array(np.full(rows.num_rows, labeled_at_ms, dtype=np.int64)).cast(_MS_UTC),
        }
    )


def slices(start: dt.datetime, end: dt.datetime, hours: int) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    step = dt.timedelta(hours=hours)
    while start < end:
        yield start, min(start + step, end)
        start += step


def stream_eligible(
    pg: Any, customer: str, start: dt.datetime, end: dt.datetime, slice_hours: int
) -> Iterator[pa.Table]:
    """Yield the eligible conversations of [start, end) as Arrow tables, one per non-empty slice.

    :param pg: an ADBC PostgreSQL DB-API connection (``adbc_driver_postgresql.dbapi.connect``).
    """
    with pg.cursor() as cur:
        cur.execute(
            "SELECT min(started_at), max(started_at) FROM conversations "
            "WHERE customer_id = $1 AND started_at >= $2 AND started_at < $3",
            (customer, start, end),
        )
        low, high = cur.fetchone()
        if low is None:
            return
        # slice only the span that has conversations (watermark mode starts at the epoch)
        for first, last in slices(
            max(start, low), min(end, high + dt.timedelta(microseconds=1)), slice_hours
        ):
            cur.execute(_SELECT_SQL, (customer, first, last))
            table = cur.fetch_arrow_table()
            if table.num_rows:
                yield table


def label_customer(
    pg: Any,
    clickhouse: Any,
    *,
    customer: str,
    database: str,
    table: str,
    start: dt.datetime,
    end: dt.datetime,
    run_id: str,
    slice_hours: int,
    clock: Callable[[], dt.datetime],
) -> CustomerResult:
    """Write one customer's eligible conversations of [start, end) into ``database.table``."""
    result = CustomerResult(customer=customer, database=database, start=start, end=end)
    began = time.monotonic()
    labeled_at_ms = int(clock().timestamp() * 1000)
    settings: dict[str, Any] = {}
    if table.endswith("_d"):
        settings["insert_distributed_sync"] = 1  # the job is done only when every shard has its rows
    for batch in stream_eligible(pg, customer, start, end, slice_hours):
        token = f"label-conversations:{run_id}:{customer}:{result.blocks}"
        clickhouse.insert_arrow(
            table,
            _with_labeled_at(batch, labeled_at_ms),
            database=database,
            settings={**settings, "insert_deduplication_token": token},
        )
        result.rows += batch.num_rows
        result.blocks += 1
    result.seconds = time.monotonic() - began
    return result


def _profiles(pg: Any, customer: str | None) -> list[tuple[str, str]]:
    with pg.cursor() as cur:
        if customer:
            cur.execute("SELECT customer_id, region FROM profiles WHERE customer_id = $1", (customer,))
        else:
            cur.execute("SELECT customer_id, region FROM profiles ORDER BY customer_id")
        rows = cur.fetchall()
    if customer and not rows:
        raise JobConfigError(f"{ENV_CUSTOMER}: no profile {customer!r} in Postgres")
    return [(r[0], r[1]) for r in rows]


def _watermark(clickhouse: Any, database: str, customer: str) -> dt.datetime:
    clickhouse.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{_WATERMARK_TABLE} "
        "(customer_id String, watermark DateTime64(3, 'UTC'), updated_at DateTime64(3, 'UTC')) "
        "ENGINE = ReplacingMergeTree(updated_at) ORDER BY customer_id"
    )
    rows = clickhouse.query(
        f"SELECT argMax(watermark, updated_at), count() FROM {database}.{_WATERMARK_TABLE} "
        "WHERE customer_id = {customer:String}",
        parameters={"customer": customer},
    ).result_rows
    if not rows or rows[0][1] == 0:
        return EPOCH
    return rows[0][0].replace(tzinfo=dt.UTC)


def _save_watermark(
    clickhouse: Any, database: str, customer: str, watermark: dt.datetime, now: dt.datetime
) -> None:
    clickhouse.insert(
        _WATERMARK_TABLE,
        [[customer, watermark, now]],
        database=database,
        column_names=["customer_id", "watermark", "updated_at"],
    )


def run(
    config: JobConfig,
    pg: Any,
    clickhouse: Any,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> RunResult:
    """Run the job in-process on open connections.

    :param pg: an ADBC PostgreSQL DB-API connection (``connect_postgres(dsn)``).
    :param clickhouse: a clickhouse-connect client.
    """
    result = RunResult(run_id=uuid.uuid4().hex)
    for customer, region in _profiles(pg, config.customer):
        database = database_name(customer, region)
        if config.range_mode:
            start, end = config.range_start, config.range_end
        else:
            start, end = _watermark(clickhouse, database, customer), config.now or clock()
        assert start is not None and end is not None
        done = label_customer(
            pg,
            clickhouse,
            customer=customer,
            database=database,
            table=config.table,
            start=start,
            end=end,
            run_id=result.run_id,
            slice_hours=config.slice_hours,
            clock=clock,
        )
        if not config.range_mode:
            _save_watermark(clickhouse, database, customer, end, clock())
        log.info(
            "labeled %s rows of %s into %s.%s for [%s, %s) in %.2f s (%s blocks)",
            done.rows,
            customer,
            database,
            config.table,
            start.isoformat(),
            end.isoformat(),
            done.seconds,
            done.blocks,
        )
        result.customers.append(done)
    return result


def run_from_env(env: dict[str, str] | os._Environ[str] | None = None) -> RunResult:
    """Run as the container does: configuration and connections from the environment."""
    import clickhouse_connect

    env = os.environ if env is None else env
    config = JobConfig.from_env(env)
    pg_dsn, ch_dsn = env.get(ENV_POSTGRES_DSN, "").strip(), env.get(ENV_CLICKHOUSE_DSN, "").strip()
    if not pg_dsn or not ch_dsn:
        raise JobConfigError(f"set {ENV_POSTGRES_DSN} and {ENV_CLICKHOUSE_DSN}")
    clickhouse = clickhouse_connect.get_client(dsn=ch_dsn)
    try:
        with connect_postgres(pg_dsn) as pg:
            return run(config, pg, clickhouse)
    finally:
        clickhouse.close()


def connect_postgres(dsn: str) -> Any:
    """An ADBC connection (libpq conninfo or URI): rows arrive as Arrow, no Python object per row."""
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(dsn)
