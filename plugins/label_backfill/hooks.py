"""Connections through the official providers' hooks (the only place that names them)."""

from __future__ import annotations

from typing import Any

from label_backfill.settings import CLICKHOUSE_CONN_ID, POSTGRES_CONN_ID


def postgres_connection(conn_id: str = POSTGRES_CONN_ID) -> Any:
    """A DB-API connection to the conversations database (psycopg 3 through ``PostgresHook``)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return PostgresHook(postgres_conn_id=conn_id).get_conn()


def clickhouse_client(conn_id: str = CLICKHOUSE_CONN_ID) -> Any:
    """A clickhouse-connect client through the official ``ClickHouseHook`` (chdb via ``client_kwargs``)."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    return ClickHouseHook(clickhouse_conn_id=conn_id).get_client()
