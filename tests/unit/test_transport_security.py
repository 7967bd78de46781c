"""What the hooks hand each client: every libpq parameter of the Postgres connection, and ClickHouse client
kwargs that really ask for TLS (no database: the clients' connect functions are replaced by spies).

The real connections are in ``tests/integration/test_transport_security.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.unit

PG_CONN = "postgres_params_unit"
CH_CONN = "clickhouse_tls_unit"

PG_EXTRA = {
    "sslmode": "verify-full",
    "sslrootcert": "/etc/label-backfill/pg-root.crt",
    "sslcert": "/etc/label-backfill/client.crt",
    "sslkey": "/etc/label-backfill/client.key",
    "options": "-c statement_timeout=600s",
    "target_session_attrs": "read-only",
    "application_name": "label-backfill",
    "keepalives_idle": 30,
    "connect_timeout": 10,
    "cursor": "dictcursor",  # the hook's own option, not libpq's
}


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


class Stop(Exception):
    pass


def test_postgres_connect_kwargs_are_what_the_hook_gives_psycopg(monkeypatch):
    """The libpq parameters every other client gets equal those of the provider's own connection (a
    provider upgrade that changes how PostgresHook builds them fails here)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook
    from label_backfill import hooks
    from psycopg.connection import Connection

    set_connection(
        monkeypatch, PG_CONN, conn_type="postgres", host="pg.internal", port=5432, login="label_backfill_reader",
        password="s3cret-pw", schema="conversations", extra=PG_EXTRA,
    )  # fmt: skip
    seen: dict[str, Any] = {}

    def spy(cls, conninfo: str = "", **kwargs: Any) -> Any:
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(Connection, "connect", classmethod(spy))
    with pytest.raises(Stop):
        PostgresHook(postgres_conn_id=PG_CONN).get_conn()

    libpq = hooks.postgres_connect_kwargs(PG_CONN)
    assert libpq == {k: v for k, v in seen.items() if k not in {"row_factory"}}
    assert "row_factory" in seen and "cursor" not in libpq  # the hook's cursor option stays the hook's
    assert {k: libpq[k] for k in ("sslmode", "sslrootcert", "options", "target_session_attrs")} == {
        k: PG_EXTRA[k] for k in ("sslmode", "sslrootcert", "options", "target_session_attrs")
    }


def test_postgres_dsn_carries_every_parameter(monkeypatch):
    from label_backfill import hooks
    from psycopg.conninfo import conninfo_to_dict

    set_connection(
        monkeypatch, PG_CONN, conn_type="postgres", host="pg.internal", port=5432, login="reader",
        password="p w'd", schema="conversations", extra=PG_EXTRA,
    )  # fmt: skip
    parsed = conninfo_to_dict(hooks.postgres_dsn(PG_CONN))
    expected = {k: str(v) for k, v in PG_EXTRA.items() if k != "cursor"}
    expected |= {"host": "pg.internal", "port": "5432", "user": "reader", "password": "p w'd"}
    assert parsed == expected | {"dbname": "conversations"}


def test_postgres_dsn_without_extras_is_the_plain_fields(monkeypatch):
    from label_backfill import hooks
    from psycopg.conninfo import conninfo_to_dict

    set_connection(
        monkeypatch, PG_CONN, conn_type="postgres", host="/run/pg", login="postgres", schema="conv"
    )
    assert conninfo_to_dict(hooks.postgres_dsn(PG_CONN)) == {
        "host": "/run/pg",
        "user": "postgres",
        "dbname": "conv",
    }


def clickhouse_kwargs_through_the_client(monkeypatch, **fields: Any) -> dict[str, Any]:
    """What clickhouse_connect.get_client receives when hooks.clickhouse_client opens the connection."""
    import clickhouse_connect
    from label_backfill import hooks

    set_connection(monkeypatch, CH_CONN, conn_type="clickhouse", **fields)
    seen: dict[str, Any] = {}
    monkeypatch.setattr(clickhouse_connect, "get_client", lambda **kwargs: seen.update(kwargs) or "client")
    assert hooks.clickhouse_client(CH_CONN) == "client"
    assert seen == hooks.clickhouse_client_kwargs(CH_CONN)
    return seen


def test_clickhouse_tls_is_the_extras_own_secure_field(monkeypatch):
    """README's configuration for port 8443: the extra's secure/verify, a CA bundle in client_kwargs."""
    kwargs = clickhouse_kwargs_through_the_client(
        monkeypatch, host="ch.internal", port=8443, login="label_backfill", password="pw", schema="default",
        extra={"secure": True, "verify": True, "client_kwargs": {"ca_cert": "/etc/label-backfill/ch-ca.pem"}},
    )  # fmt: skip
    assert {k: kwargs[k] for k in ("host", "port", "secure", "verify", "ca_cert")} == {
        "host": "ch.internal",
        "port": 8443,
        "secure": True,
        "verify": True,
        "ca_cert": "/etc/label-backfill/ch-ca.pem",
    }


def test_clickhouse_secure_in_client_kwargs_is_refused_not_silently_plain_http(monkeypatch):
    from airflow.providers.clickhousedb.hooks.clickhouse import ClickHouseHook
    from label_backfill import hooks

    extra = {"client_kwargs": {"secure": True, "verify": True}}
    set_connection(monkeypatch, CH_CONN, conn_type="clickhouse", host="ch.internal", port=8443, extra=extra)
    # the provider itself drops both keys: this connection would talk plain HTTP to port 8443
    provider = ClickHouseHook(clickhouse_conn_id=CH_CONN)._get_client_kwargs()
    assert (provider["port"], provider["secure"]) == (8443, False)
    for call in (hooks.clickhouse_client, hooks.clickhouse_client_kwargs):
        with pytest.raises(
            ValueError, match=r"client_kwargs.secure is ignored .* set the extra's own 'secure'"
        ):
            call(CH_CONN)


@pytest.mark.parametrize("value", ["true", "false", 1])
def test_clickhouse_secure_must_be_a_json_boolean(monkeypatch, value):
    from label_backfill import hooks

    set_connection(monkeypatch, CH_CONN, conn_type="clickhouse", host="ch.internal", extra={"secure": value})
    with pytest.raises(ValueError, match="extra secure must be true or false"):
        hooks.clickhouse_client_kwargs(CH_CONN)


def test_the_embedded_stacks_chdb_connection_passes(monkeypatch, tmp_path):
    from label_backfill import hooks

    extra = {"client_kwargs": {"interface": "chdb", "path": str(tmp_path)}}
    set_connection(monkeypatch, CH_CONN, conn_type="clickhouse", extra=extra)
    kwargs = hooks.clickhouse_client_kwargs(CH_CONN)
    assert (kwargs["interface"], kwargs["path"], kwargs["secure"]) == ("chdb", str(tmp_path), False)
