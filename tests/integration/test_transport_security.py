"""Every Postgres client the package opens honours the connection's libpq parameters (TLS above all).

The DAG tasks reach Postgres three ways: the provider's ``PostgresHook`` (psycopg), the comparison's
drifted-day reads through ADBC (``hooks.arrow_postgres(hooks.postgres_dsn(...))``), and the local runner's
job (on a connection of the same ``hooks.arrow_postgres``) or the job alone (``label_conversations.connect_postgres``). A connection that asks for TLS must
get it on all three, or fail on all three. The server with a certificate is ``tests/fakes/pg_tls.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.pg_tls import PASSWORD, TlsFront, make_certificates, tcp_postgres

pytestmark = pytest.mark.integration

CONN_ID = "postgres_transport_test"


def _psycopg(conn_id: str) -> tuple[Any, ...]:
    from label_backfill import hooks

    with hooks.postgres_connection(conn_id) as conn:
        return conn.execute(QUERY).fetchone()


def _adbc_comparison(conn_id: str) -> tuple[Any, ...]:
    from label_backfill import hooks

    with hooks.arrow_postgres(hooks.postgres_dsn(conn_id)) as conn, conn.cursor() as cur:
        cur.execute(QUERY)
        return cur.fetchone()


def _adbc_local_runner(conn_id: str) -> tuple[Any, ...]:
    from label_backfill import hooks
    from label_conversations import connect_postgres

    with connect_postgres(hooks.postgres_dsn(conn_id)) as conn, conn.cursor() as cur:  # the job's own CLI
        cur.execute(QUERY)
        return cur.fetchone()


QUERY = (
    "SELECT coalesce((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false) AS tls, "
    "current_setting('application_name') AS application_name, "
    "current_setting('default_transaction_read_only') AS read_only"
)
PATHS: dict[str, Callable[[str], tuple[Any, ...]]] = {
    "psycopg (PostgresHook)": _psycopg,
    "ADBC (comparison)": _adbc_comparison,
    "ADBC (local runner)": _adbc_local_runner,
}


def use_connection(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps({"conn_type": "postgres", **fields}))


def outcomes(paths: dict[str, Callable[[str], tuple[Any, ...]]] = PATHS) -> dict[str, Any]:
    """Each path's row, or its error's message."""
    found: dict[str, Any] = {}
    for name, connect in paths.items():
        try:
            found[name] = connect(CONN_ID)
        except Exception as err:  # noqa: BLE001 - the message is what the test compares
            found[name] = f"{type(err).__name__}: {err}"
    return found


@pytest.fixture(autouse=True)
def fresh_connections():
    """Every path connects anew (the comparison's ADBC connections are pooled within a process)."""
    from label_backfill import hooks

    hooks.close_arrow_connections()
    yield
    hooks.close_arrow_connections()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = make_certificates(tmp_path_factory.mktemp("certs"))
    with tcp_postgres() as server, TlsFront(server.port, certs.server_cert, certs.server_key) as front:
        yield server, front, certs


def tcp_fields(port: int, host: str = "127.0.0.1", **extra: Any) -> dict[str, Any]:
    return {
        "host": host,
        "port": port,
        "login": "postgres",
        "password": PASSWORD,
        "schema": "postgres",
        "extra": {"application_name": "label-backfill-tls-test", **extra},
    }


def test_sslmode_require_fails_on_every_path_against_a_server_without_tls(tls_server, monkeypatch):
    server, _front, _certs = tls_server
    use_connection(monkeypatch, **tcp_fields(server.port, sslmode="require"))
    found = outcomes()
    assert all(
        isinstance(v, str) and "server does not support SSL, but SSL was required" in v
        for v in found.values()
    ), found
    # control: the same server, the same password, without the requirement
    use_connection(monkeypatch, **tcp_fields(server.port, sslmode="disable"))
    assert {name: row[0] for name, row in outcomes().items()} == dict.fromkeys(PATHS, False)


def test_sslmode_require_succeeds_over_tls_on_every_path(tls_server, monkeypatch):
    _server, front, _certs = tls_server
    use_connection(monkeypatch, **tcp_fields(front.port, sslmode="require"))
    for name, connect in PATHS.items():
        before = front.tls_sessions
        # the server behind the front sees the relayed connection (ssl false there) ...
        assert connect(CONN_ID) == (False, "label-backfill-tls-test", "off"), name
        # ... that reached it through a TLS session (ADBC opens two connections: the driver's type lookup)
        assert front.tls_sessions > before, name


def test_verify_full_uses_the_connections_root_certificate_on_every_path(tls_server, monkeypatch):
    _server, front, certs = tls_server
    use_connection(
        monkeypatch, **tcp_fields(front.port, "localhost", sslmode="verify-full", sslrootcert=str(certs.ca))
    )
    assert {name: row[1] for name, row in outcomes().items()} == dict.fromkeys(
        PATHS, "label-backfill-tls-test"
    )
    # a root certificate that did not sign the server's: refused everywhere, so sslrootcert reached every client
    use_connection(
        monkeypatch,
        **tcp_fields(front.port, "localhost", sslmode="verify-full", sslrootcert=str(certs.other_ca)),
    )
    found = outcomes()
    assert all(isinstance(v, str) and "certificate verify failed" in v for v in found.values()), found


def test_every_libpq_parameter_of_the_connection_reaches_every_client(stack, monkeypatch):
    """options, application_name ... (here on the embedded stack's socket) reach psycopg and both ADBC paths."""
    conn = json.loads(stack[0].airflow_env(stack[1])["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])
    conn["extra"] = {
        "application_name": "label-backfill-params-test",
        "options": "-c default_transaction_read_only=on",
        "connect_timeout": 10,
        "target_session_attrs": "any",
        "cursor": "dictcursor",  # the hook's own option: psycopg only, never passed to libpq
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    found = outcomes({k: v for k, v in PATHS.items() if not k.startswith("psycopg")})
    assert found == dict.fromkeys(list(PATHS)[1:], (False, "label-backfill-params-test", "on")), found
    row = _psycopg(CONN_ID)  # a dict row: the hook applied its cursor option
    assert row == {"tls": False, "application_name": "label-backfill-params-test", "read_only": "on"}


def test_libpq_uses_no_tls_on_a_unix_socket_whatever_sslmode_says(stack, monkeypatch):
    """Why the tests above need TCP: over a Unix socket libpq never negotiates TLS, and even verify-full
    with a root certificate that does not exist connects, in clear text."""
    conn = json.loads(stack[0].airflow_env(stack[1])["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])
    conn["extra"] = {"sslmode": "verify-full", "sslrootcert": "/nonexistent/root.crt"}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    assert {name: row[0] for name, row in outcomes().items()} == dict.fromkeys(PATHS, False)
