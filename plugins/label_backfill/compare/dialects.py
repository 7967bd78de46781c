"""One class per engine, each pushing the same computation down into its own SQL (label_backfill/sql/<engine>/).

Both sides fingerprint a conversation as the first 60 bits of md5('id|agent|usecase|source|start_ms|end_ms')
read as an integer, and sum fingerprints per UTC start day: equal sums (with equal counts) mean equal days.
For drifted days both sides hand over one row per stored row as Arrow tables of the same schema: id, day and
that fingerprint (``FINGERPRINT_SCHEMA``: no label column is read), or every compared column (``ROW_SCHEMA``).
Fingerprint, row queries and both schemas all derive from one definition, ``sql.COMPARED``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from label_backfill import sql
from label_backfill.clickhouse import LabelTable
from label_backfill.hooks import arrow_postgres
from label_backfill.naming import DayRange, validate_customer_id


@dataclass(frozen=True)
class DaySummary:
    """Aggregates of one day on one side (Postgres fills rows = distinct = eligible, duplicates = 0)."""

    rows: int
    distinct: int
    duplicates: int
    checksum: int


KEY = sql.KEY.name
LABEL_COLUMNS = tuple(c.name for c in sql.LABELS)
ROW_SCHEMA = pa.schema(
    [
        (KEY, pa.string()),
        ("day", pa.date32()),
        *((c.name, pa.int64() if c.millis else pa.string()) for c in sql.LABELS),
    ]
)

FINGERPRINT = "fingerprint"
FINGERPRINT_SCHEMA = pa.schema([(KEY, pa.string()), ("day", pa.date32()), (FINGERPRINT, pa.int64())])


@runtime_checkable
class ComparisonSide(Protocol):
    """One side of the comparison, what ``compare`` reads of it (as reladiff's table segment is to its diff).

    Every method is per customer and pushed down into the side's own engine; ``rows_arrow`` returns
    ``ROW_SCHEMA``, so both sides' rows line up whatever the engine.
    """

    name: str  # "postgres" or "clickhouse": the usecase distribution's column

    def day_summaries(self, customer: str, days: DayRange) -> Mapping[dt.date, DaySummary]:
        """Per UTC start day: rows, distinct conversations, duplicates, fingerprint checksum."""

    def rows_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """Every row of ``days`` with its compared columns (``ROW_SCHEMA``)."""

    def fingerprints_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """Every row of ``days``: id, day and the fingerprint of its compared columns (``FINGERPRINT_SCHEMA``)."""

    def usecases(self, customer: str, days: DayRange) -> Mapping[str, int]:
        """Conversations per usecase over ``days``."""

    def labels(self, customer: str, conversation_ids: Iterable[str]) -> Mapping[str, Any]:
        """Each listed conversation's labels as this side holds them (the report's samples)."""


@runtime_checkable
class CheckedSide(ComparisonSide, Protocol):
    """The side checked against the source of truth: its ``database`` names the comparison."""

    @property
    def database(self) -> str: ...


def _as_rows(table: pa.Table, schema: pa.Schema = ROW_SCHEMA) -> pa.Table:
    """A query's result in ``schema``: columns picked by name, each cast to its type."""
    return pa.table([table.column(f.name).cast(f.type) for f in schema], schema=schema)


def _bounds(days: DayRange) -> dict[str, dt.datetime]:
    return {"start": days.start, "end": days.end}


class PostgresSide:
    """The source of truth: eligible conversations, read through a DB-API connection."""

    name = "postgres"

    def __init__(
        self,
        connection: Any,
        bulk_dsn: str | None = None,
        arrow_connect: Callable[[str], Any] | None = None,
    ) -> None:
        """
        :param connection: a DB-API connection (``PostgresHook``) for the small queries.
        :param bulk_dsn: libpq conninfo for the row reads of drifted days, which go through ADBC (Arrow, no
            Python object per row); default: the connection's own conninfo (psycopg 3, no password).
        :param arrow_connect: opens the ADBC connection for those reads from a conninfo; default
            ``label_backfill.hooks.arrow_postgres``.
        """
        self.connection = connection
        self.bulk_dsn = bulk_dsn
        self.arrow_connect = arrow_connect

    def _fetch(self, query: str, params: dict[str, Any]) -> list[tuple]:
        with self.connection.cursor() as cur:
            cur.execute(query, params)
            rows = cur.fetchall()
        self.connection.rollback()  # read-only: never leave a transaction open on the source
        return rows

    def region(self, customer: str) -> str | None:
        """The customer's profile region, or None when there is no such profile."""
        rows = self._fetch(sql.postgres("profile"), {"customer_id": validate_customer_id(customer)})
        return rows[0][1] if rows else None

    def customers(self) -> list[tuple[str, str]]:
        return [(c, r) for c, r in self._fetch(sql.postgres("profiles"), {})]

    def day_summaries(self, customer: str, days: DayRange) -> dict[dt.date, DaySummary]:
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        return {
            day: DaySummary(rows=n, distinct=n, duplicates=0, checksum=int(checksum))
            for day, n, checksum in self._fetch(sql.postgres("eligible_day_summary"), params)
        }

    def rows_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """The eligible conversations of ``days`` with their labels (``ROW_SCHEMA``)."""
        return _as_rows(self._arrow("eligible_rows", customer, days))

    def fingerprints_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """The eligible conversations of ``days``: id, day, fingerprint (``FINGERPRINT_SCHEMA``)."""
        return _as_rows(self._arrow("eligible_fingerprints", customer, days), FINGERPRINT_SCHEMA)

    def _arrow(self, query: str, customer: str, days: DayRange) -> pa.Table:
        """A range query's result as Arrow, through its own ADBC connection (safe beside other reads)."""
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        text, values = sql.positional(sql.postgres(query), params)
        connect = self.arrow_connect or arrow_postgres
        with connect(self.bulk_dsn or self.connection.info.dsn) as bulk, bulk.cursor() as cur:
            cur.execute(text, values)
            return cur.fetch_arrow_table()

    def usecases(self, customer: str, days: DayRange) -> dict[str, int]:
        """Conversations per usecase, on its own connection (so it can run beside the day summaries)."""
        found = self._arrow("usecase_distribution", customer, days).to_pydict()
        return dict(zip(found["usecase_id"], found["conversations"], strict=True))

    def eligible_outside(
        self, customer: str, conversation_ids: Iterable[str], days: DayRange
    ) -> dict[str, dt.date]:
        """Of the listed conversations, the eligible ones that start outside ``days``, with their start day."""
        params = {
            "customer_id": validate_customer_id(customer),
            "conversation_ids": list(conversation_ids),
            **_bounds(days),
        }
        return dict(self._fetch(sql.postgres("eligible_outside"), params))

    def labels(self, customer: str, conversation_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        params = {"customer_id": validate_customer_id(customer), "conversation_ids": list(conversation_ids)}
        out = {}
        for cid, agent, usecase, source, started, ended, eligible, dev in self._fetch(
            sql.postgres("conversation_labels"), params
        ):
            out[cid] = {
                "agent_user_id": agent,
                "usecase_id": usecase,
                "source": source,
                "conversation_start_time": _iso(started),
                "conversation_end_time": _iso(ended),
                "eligible": bool(eligible),
                "agent_is_dev_user": bool(dev),
            }
        return out


class ClickHouseSide:
    """One customer's label table as the comparison reads it, through a clickhouse-connect client.

    The table itself (database, cluster, and so the table read: ``_d`` on a cluster) is ``table``, a
    ``LabelTable``: ask it whether it ``exists``.

    :param client: clickhouse-connect client (``ClickHouseHook.get_client()`` or the embedded engine).
    :param database: the customer's database (validated identifier).
    :param cluster: the deployment's cluster, or None on a single node.
    """

    name = "clickhouse"

    def __init__(self, client: Any, database: str, cluster: str | None = None) -> None:
        self.table = LabelTable(client, database, cluster)

    @property
    def database(self) -> str:
        return self.table.database

    def day_summaries(self, customer: str, days: DayRange) -> dict[dt.date, DaySummary]:
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        return {
            day: DaySummary(rows=rows, distinct=distinct, duplicates=dups, checksum=int(checksum))
            for day, rows, distinct, dups, checksum in self.table.query("day_summary", params)
        }

    def rows_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """Every row of ``days`` (duplicates included) with its labels (``ROW_SCHEMA``)."""
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        return _as_rows(self.table.client.query_arrow(self.table.read_sql("rows"), parameters=params))

    def fingerprints_arrow(self, customer: str, days: DayRange) -> pa.Table:
        """Every row of ``days`` (duplicates included): id, day, fingerprint (``FINGERPRINT_SCHEMA``)."""
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        table = self.table.client.query_arrow(self.table.read_sql("fingerprints"), parameters=params)
        return _as_rows(table, FINGERPRINT_SCHEMA)

    def usecases(self, customer: str, days: DayRange) -> dict[str, int]:
        params = {"customer_id": validate_customer_id(customer), **_bounds(days)}
        return dict(self.table.query("usecase_distribution", params))

    def labels(self, customer: str, conversation_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        params = {"customer_id": validate_customer_id(customer), "conversation_ids": list(conversation_ids)}
        out: dict[str, list[dict[str, Any]]] = {}
        for cid, agent, usecase, source, started, ended, labeled in self.table.query(
            "conversation_labels", params
        ):
            out.setdefault(cid, []).append(
                {
                    "agent_user_id": agent,
                    "usecase_id": usecase,
                    "source": source,
                    "conversation_start_time": _iso(started),
                    "conversation_end_time": _iso(ended),
                    "labeled_at": _iso(labeled),
                }
            )
        return out


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # ClickHouse hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
