"""Connections through the official providers' hooks (the only place that names them)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from label_backfill.settings import CLICKHOUSE_CONN_ID, POSTGRES_CONN_ID


def postgres_connection(conn_id: str = POSTGRES_CONN_ID) -> Any:
    """A DB-API connection to the conversations database (psycopg 3 through ``PostgresHook``)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()


def postgres_dsn(conn_id: str = POSTGRES_CONN_ID) -> str:
    """A libpq conninfo string for the connection (for clients other than the hook's, e.g. ADBC)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from psycopg.conninfo import make_conninfo

    conn = PostgresHook(postgres_conn_id=conn_id).get_connection(conn_id)
    fields = {
        "host": conn.host,
        "port": conn.port,
        "user": conn.login,
        "password": conn.password,
        "dbname": conn.schema,
    }
    return make_conninfo(**{k: v for k, v in fields.items() if v not in (None, "")})


def clickhouse_client(conn_id: str = CLICKHOUSE_CONN_ID) -> Any:
    """A clickhouse-connect client through the official ``ClickHouseHook`` (chdb via ``client_kwargs``)."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    return ClickHouseHook(clickhouse_conn_id=conn_id).get_client()


def arrow_postgres(dsn: str) -> Any:
    """An ADBC connection for Arrow reads (libpq conninfo or URI): rows arrive as Arrow, no Python object per
    row. The one place that opens one; the comparison gets it as its ``arrow_connect``."""
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(dsn)


@contextmanager
def postgres_side(conn_id: str = POSTGRES_CONN_ID) -> Iterator[Any]:
    """The comparison's Postgres side for a task: small queries through the provider's hook, drifted-day
    row reads through ADBC (``arrow_postgres``) with the same credentials (``postgres_dsn``, password
    included)."""
    from label_backfill.compare import PostgresSide

    connection = postgres_connection(conn_id)
    try:
        yield PostgresSide(connection, bulk_dsn=postgres_dsn(conn_id), arrow_connect=arrow_postgres)
    finally:
        connection.close()
