"""Connections through the official providers' hooks (the only place that names them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from label_backfill.settings import CLICKHOUSE_CONN_ID, POSTGRES_CONN_ID

# ClickHouseHook.get_client always passes these HTTP settings; on chdb (the embedded stack's engine)
# clickhouse-connect logs "Ignoring arguments with no chdb meaning: client_name, host, port, username, verify"
# for every client, i.e. on every task. That line alone is dropped; one that names any other argument (one of
# the connection's own client_kwargs that chdb ignores) is still logged.
_HOOK_HTTP_ARGS = frozenset({"host", "port", "username", "password", "secure", "verify", "client_name"})
_CHDB_IGNORED = "Ignoring arguments with no chdb meaning: %s"


class _HookArgsOnChdb(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != _CHDB_IGNORED or not isinstance(record.args, tuple) or len(record.args) != 1:
            return True
        return not {name.strip() for name in str(record.args[0]).split(",")} <= _HOOK_HTTP_ARGS


def _quiet_hook_args_on_chdb() -> None:
    driver_log = logging.getLogger("clickhouse_connect.driver")
    if not any(isinstance(f, _HookArgsOnChdb) for f in driver_log.filters):
        driver_log.addFilter(_HookArgsOnChdb())


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

    _quiet_hook_args_on_chdb()
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
