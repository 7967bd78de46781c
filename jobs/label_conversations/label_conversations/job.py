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
- ``LABEL_CONVERSATIONS_BATCH_BYTES``: CSV bytes per inserted block (default 16 MiB).

Rows are streamed (Postgres ``COPY`` -> Arrow record batches -> ClickHouse), never the whole range in memory.
Every block carries an ``insert_deduplication_token`` unique to this run: a delete-then-rewrite of identical
data is never silently dropped by ClickHouse's insert deduplication, while a retried block of the same run
still is.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from pyarrow import csv as pa_csv

log = logging.getLogger("label_conversations")

ENV_RANGE_START = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
ENV_RANGE_END = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
ENV_CUSTOMER = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"
ENV_POSTGRES_DSN = "LABEL_CONVERSATIONS_POSTGRES_DSN"
ENV_CLICKHOUSE_DSN = "LABEL_CONVERSATIONS_CLICKHOUSE_DSN"
ENV_CLICKHOUSE_TABLE = "LABEL_CONVERSATIONS_CLICKHOUSE_TABLE"
ENV_NOW = "LABEL_CONVERSATIONS_NOW"
ENV_BATCH_BYTES = "LABEL_CONVERSATIONS_BATCH_BYTES"

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Eligibility per the data contract. Timestamps leave Postgres as epoch milliseconds (floor), the
# precision of DateTime64(3), so both engines agree on the stored value.
_COPY_SQL = """
COPY (
    SELECT c.customer_id, c.conversation_id, c.agent_user_id, c.usecase_id, c.source,
           floor(extract(epoch FROM c.started_at) * 1000)::bigint,
           floor(extract(epoch FROM c.ended_at) * 1000)::bigint
    FROM conversations c
    JOIN users u ON u.user_id = c.agent_user_id AND NOT u.is_dev_user
    WHERE c.customer_id = %(customer_id)s
      AND c.ended_at IS NOT NULL
      AND c.source IN ('voice', 'chat')
      AND c.started_at >= %(start)s
      AND c.started_at < %(end)s
) TO STDOUT (FORMAT CSV)
"""
_CSV_COLUMNS = {
    "customer_id": pa.string(),
    "conversation_id": pa.string(),
    "agent_user_id": pa.string(),
    "usecase_id": pa.string(),
    "source": pa.string(),
    "start_ms": pa.int64(),
    "end_ms": pa.int64(),
}
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
    batch_bytes: int = 16 << 20

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
            batch_bytes=int(env.get(ENV_BATCH_BYTES, "").strip() or 16 << 20),
        )

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.table):
            raise JobConfigError(f"{ENV_CLICKHOUSE_TABLE}: {self.table!r} is not a table name")
        if self.range_start and self.range_end and self.range_end <= self.range_start:
            raise JobConfigError(f"{ENV_RANGE_END} must be after {ENV_RANGE_START}")


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


class _CopyReader(io.RawIOBase):
    """A file object over a psycopg ``COPY ... TO STDOUT`` so Arrow can parse it as a stream."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _arrow_batch(batch: pa.RecordBatch, labeled_at_ms: int) -> pa.Table:
    n = batch.num_rows
    return pa.table(
        {
            "customer_id": batch.column("customer_id"),
            "conversation_id": batch.column("conversation_id"),
            "agent_user_id": batch.column("agent_user_id"),
            "usecase_id": batch.column("usecase_id"),
            "source": batch.column("source"),
            "conversation_start_time": batch.column("start_ms").cast(_MS_UTC),
            "conversation_end_time": batch.column("end_ms").cast(_MS_UTC),
            "labeled_at": pa.array(np.full(n, labeled_at_ms, dtype=np.int64)).cast(_MS_UTC),
        }
    )


def stream_eligible(
    pg: psycopg.Connection, customer: str, start: dt.datetime, end: dt.datetime, batch_bytes: int
) -> Iterator[pa.RecordBatch]:
    """Yield the eligible conversations of [start, end) as Arrow record batches of ~``batch_bytes``."""
    with (
        pg.cursor() as cur,
        cur.copy(_COPY_SQL, {"customer_id": customer, "start": start, "end": end}) as copy,
    ):
        chunks = iter(copy)
        first = next(chunks, None)
        if first is None:  # nothing eligible: Arrow refuses an empty CSV stream
            return
        reader = pa_csv.open_csv(
            io.BufferedReader(_CopyReader(itertools.chain([first], chunks)), buffer_size=1 << 20),
            read_options=pa_csv.ReadOptions(column_names=list(_CSV_COLUMNS), block_size=batch_bytes),
            convert_options=pa_csv.ConvertOptions(column_types=_CSV_COLUMNS, strings_can_be_null=False),
        )
        yield from reader


def label_customer(
    pg: psycopg.Connection,
    clickhouse: Any,
    *,
    customer: str,
    database: str,
    table: str,
    start: dt.datetime,
    end: dt.datetime,
    run_id: str,
    batch_bytes: int,
    clock: Callable[[], dt.datetime],
) -> CustomerResult:
    """Write one customer's eligible conversations of [start, end) into ``database.table``."""
    result = CustomerResult(customer=customer, database=database, start=start, end=end)
    began = time.monotonic()
    labeled_at_ms = int(clock().timestamp() * 1000)
    settings: dict[str, Any] = {}
    if table.endswith("_d"):
        settings["insert_distributed_sync"] = 1  # the job is done only when every shard has its rows
    for batch in stream_eligible(pg, customer, start, end, batch_bytes):
        if batch.num_rows == 0:
            continue
        token = f"label-conversations:{run_id}:{customer}:{result.blocks}"
        clickhouse.insert_arrow(
            table,
            _arrow_batch(batch, labeled_at_ms),
            database=database,
            settings={**settings, "insert_deduplication_token": token},
        )
        result.rows += batch.num_rows
        result.blocks += 1
    result.seconds = time.monotonic() - began
    return result


def _profiles(pg: psycopg.Connection, customer: str | None) -> list[tuple[str, str]]:
    with pg.cursor() as cur:
        if customer:
            cur.execute("SELECT customer_id, region FROM profiles WHERE customer_id = %s", (customer,))
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
    pg: psycopg.Connection,
    clickhouse: Any,
    *,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> RunResult:
    """Run the job in-process on open connections (``clickhouse`` is a clickhouse-connect client)."""
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
            batch_bytes=config.batch_bytes,
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
        with psycopg.connect(pg_dsn) as pg:
            return run(config, pg, clickhouse)
    finally:
        clickhouse.close()
