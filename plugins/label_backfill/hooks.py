"""Connections through the official providers' hooks (the only place that names them)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from label_backfill.chdb_lock import LockedChdbClient, chdb_path, pinned_client
from label_backfill.settings import CLICKHOUSE_CONN_ID, POSTGRES_CONN_ID

# psycopg's own keyword arguments (Python objects, not libpq parameters): the hook may pass them
# (``row_factory`` from the extra ``cursor``); no other client understands them.
_PSYCOPG_ONLY = frozenset({"autocommit", "prepare_threshold", "context", "row_factory", "cursor_factory"})

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


def postgres_connect_kwargs(conn_id: str = POSTGRES_CONN_ID) -> dict[str, Any]:
    """The libpq parameters ``PostgresHook.get_conn()`` connects with, without connecting.

    The hook builds them itself: host, port, user, password, dbname, then every key of the connection's
    extra except its own options (``cursor``, ``iam``, ``sqlalchemy_*`` ...): ``sslmode``, ``sslrootcert``,
    ``sslcert``, ``sslkey``, ``options``, ``target_session_attrs``, ``application_name``, ``keepalives*``,
    ``connect_timeout`` ... (and with ``iam`` its token as the password). They are captured at the one
    place the hook hands them to psycopg, so every other client (ADBC: ``postgres_dsn``) gets exactly what
    the hook's own connection gets. Unset values (None) are left out, as psycopg leaves them out.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    captured: dict[str, Any] = {}

    # apache-airflow-providers-postgres 7.1.1: get_conn() builds the arguments and hands them to the internal
    # _create_connection(conn_args); this override keeps them instead of connecting. tests/unit/
    # test_transport_security.py checks they equal what psycopg receives from the real get_conn().
    class _Capture(PostgresHook):
        def _create_connection(self, conn_args: dict[str, Any]) -> Any:
            captured.update(conn_args)
            return None

    _Capture(postgres_conn_id=conn_id).get_conn()
    return {key: value for key, value in captured.items() if key not in _PSYCOPG_ONLY and value is not None}


def postgres_dsn(conn_id: str = POSTGRES_CONN_ID) -> str:
    """A libpq conninfo string with every parameter of ``postgres_connect_kwargs`` (password included: pass
    it to a client, never log it), for clients other than the hook's (ADBC, the local runner's job)."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**postgres_connect_kwargs(conn_id))


# What the clickhousedb provider (1.0.1) sets itself and drops from the extra's ``client_kwargs`` (logged at
# DEBUG only): ``{"client_kwargs": {"secure": true}}`` connects in plain HTTP. TLS is the extra's own
# top-level ``secure`` / ``verify``; a CA bundle (``ca_cert``) or client certificate (``client_cert``,
# ``client_cert_key``) does go in ``client_kwargs``.
_CLICKHOUSE_HOOK_MANAGED = {
    "secure": "the extra's own 'secure' field",
    "verify": "the extra's own 'verify' field",
    "host": "the connection's host",
    "port": "the connection's port",
    "username": "the connection's login",
    "password": "the connection's password",
    "database": "the connection's schema",
    "client_name": "the extra's own 'client_name' field",
    "settings": "the extra's 'session_settings'",
}


def clickhouse_connection_problems(extra: dict[str, Any]) -> list[str]:
    """Why the provider would not connect the way a ``clickhouse`` connection's extra says, or ``[]``.

    Keys of ``client_kwargs`` that the hook silently replaces (``secure`` above all: the connection would
    fall back to plain HTTP), and a ``secure``/``verify`` that is not a JSON boolean (the hook applies
    ``bool()``, so the string ``"false"`` means true).
    """
    problems = []
    client_kwargs = extra.get("client_kwargs") or {}
    if isinstance(client_kwargs, dict):
        for key in sorted(set(client_kwargs) & set(_CLICKHOUSE_HOOK_MANAGED)):
            problems.append(
                f"client_kwargs.{key} is ignored by the clickhousedb provider; set {_CLICKHOUSE_HOOK_MANAGED[key]}"
                + (' (e.g. extra {"secure": true})' if key == "secure" else "")
            )
    for key in ("secure", "verify"):
        if key in extra and not isinstance(extra[key], bool):
            problems.append(f"extra {key} must be true or false (JSON), not {extra[key]!r}")
    return problems


def clickhouse_client_kwargs(conn_id: str = CLICKHOUSE_CONN_ID) -> dict[str, Any]:
    """What ``ClickHouseHook`` passes to ``clickhouse_connect.get_client`` for the connection (password
    included: never log it), after refusing an extra the hook would silently not honour."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    hook = ClickHouseHook(clickhouse_conn_id=conn_id)
    _refuse_misleading_clickhouse_extra(conn_id, hook.get_connection(conn_id).extra_dejson)
    # apache-airflow-providers-clickhousedb 1.0.1: the hook builds the kwargs in the internal _get_client_kwargs
    return hook._get_client_kwargs()


def _refuse_misleading_clickhouse_extra(conn_id: str, extra: dict[str, Any]) -> None:
    if problems := clickhouse_connection_problems(extra):
        raise ValueError(f"connection {conn_id}: " + "; ".join(problems))


def clickhouse_client(conn_id: str = CLICKHOUSE_CONN_ID) -> Any:
    """A clickhouse-connect client through the official ``ClickHouseHook`` (chdb via ``client_kwargs``);
    refuses an extra that would not connect as written (``client_kwargs.secure``: plain HTTP).

    A ``chdb://`` connection (the embedded stack) gets a ``chdb_lock.LockedChdbClient``: the directory is
    held, across processes, only during each call, so tasks run in parallel; inside ``dag.test()``'s
    in-process loop (one process runs the whole run) a client shared until the process exits
    (``chdb_lock.pinned_client``). A server connection is the hook's own client, untouched."""
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook

    _quiet_hook_args_on_chdb()
    hook = ClickHouseHook(clickhouse_conn_id=conn_id)
    _refuse_misleading_clickhouse_extra(conn_id, hook.get_connection(conn_id).extra_dejson)
    kwargs = hook._get_client_kwargs()  # apache-airflow-providers-clickhousedb 1.0.1 (see above)
    if (data_dir := chdb_path(kwargs)) is not None:
        import clickhouse_connect

        from label_backfill.operators import runs_one_task_at_a_time  # (operators imports this module)

        if runs_one_task_at_a_time():  # airflow dags test: this process runs the whole run, no one beside it
            return pinned_client(lambda: clickhouse_connect.get_client(**kwargs), data_dir)
        return LockedChdbClient(lambda: clickhouse_connect.get_client(**kwargs), data_dir)
    return hook.get_client()


# One pool of ADBC connections per (process, conninfo): opening one costs ~40 ms (the driver loads the
# server's type catalogue), paid once per process instead of once per read (a mapped day, a comparison's
# round). A forked child gets its own pool, never its parent's sockets.
_ARROW_POOLS: dict[tuple[int, str], Any] = {}
_ARROW_POOLS_LOCK = threading.Lock()
_arrow_pools_close_at_exit = False
ARROW_POOL_SIZE = 4  # idle connections kept: a comparison reads with at most 3 at once


def _arrow_pool(dsn: str) -> Any:
    import adbc_driver_postgresql.dbapi
    from sqlalchemy.pool import QueuePool

    global _arrow_pools_close_at_exit
    key = (os.getpid(), dsn)
    with _ARROW_POOLS_LOCK:
        if not _arrow_pools_close_at_exit:
            atexit.register(close_arrow_connections)  # idle connections close cleanly when the process ends
            _arrow_pools_close_at_exit = True
        if key not in _ARROW_POOLS:
            _ARROW_POOLS[key] = QueuePool(
                lambda: adbc_driver_postgresql.dbapi.connect(dsn),
                pool_size=ARROW_POOL_SIZE,
                max_overflow=-1,  # never make a reader wait for another's connection
                reset_on_return="rollback",  # a connection goes back with no transaction open
            )
        return _ARROW_POOLS[key]


def close_arrow_connections() -> None:
    """Close this process's idle pooled ADBC connections (the next block opens a new one)."""
    with _ARROW_POOLS_LOCK:
        pools = [pool for (pid, _dsn), pool in _ARROW_POOLS.items() if pid == os.getpid()]
        _ARROW_POOLS.clear()
    for pool in pools:
        pool.dispose()


@contextmanager
def arrow_postgres(dsn: str) -> Iterator[Any]:
    """An ADBC connection for Arrow reads (libpq conninfo or URI) for a ``with`` block: rows arrive as Arrow,
    no Python object per row. The one place that opens one; the comparison gets it as its ``arrow_connect``.

    Pooled (SQLAlchemy's ``QueuePool``) within the process: the block's transaction is rolled back when it
    ends and the connection kept for the next block; a block that raises closes its connection instead."""
    pooled = _arrow_pool(dsn).connect()
    try:
        yield pooled.dbapi_connection
    except BaseException:
        pooled.invalidate()  # whatever state the error left, the connection is not reused
        raise
    finally:
        pooled.close()


@contextmanager
def postgres_side(conn_id: str = POSTGRES_CONN_ID) -> Iterator[Any]:
    """The comparison's Postgres side for a task: small queries through the provider's hook, drifted-day
    row reads through ADBC (``arrow_postgres``) with every libpq parameter of the same connection
    (``postgres_dsn``: password, TLS settings, options ...)."""
    from label_backfill.compare import PostgresSide

    connection = postgres_connection(conn_id)
    try:
        yield PostgresSide(connection, bulk_dsn=postgres_dsn(conn_id), arrow_connect=arrow_postgres)
    finally:
        connection.close()
