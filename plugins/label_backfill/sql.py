"""The SQL of the package lives in ``include/sql``; this module finds and renders it.

Identifiers are spliced with ``string.Template`` (``$database``) only after validation; every value is a
bound parameter (``%(x)s`` for Postgres, ``{x:Type}`` for ClickHouse).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from string import Template
from typing import Any

from label_backfill.naming import validate_identifier

SQL_DIR = Path(
    os.environ.get("LABEL_BACKFILL_SQL_DIR") or Path(__file__).resolve().parents[2] / "include" / "sql"
)


@cache
def _read(name: str) -> str:
    return (SQL_DIR / name).read_text()


def postgres(name: str) -> str:
    """Text of ``include/sql/postgres/<name>.sql`` (values bound as ``%(x)s``); ``$eligible`` stands for the
    one definition of an eligible conversation, ``postgres/eligible.sql``."""
    text = _read(f"postgres/{name}.sql")
    if "$eligible" not in text:
        return text
    eligible = "\n".join(
        line for line in _read("postgres/eligible.sql").splitlines() if not line.startswith("--")
    )
    return Template(text).substitute(eligible=eligible)


def positional(text: str, params: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``%(name)s`` placeholders as ``$1, $2 ...`` with their values, for drivers without named ones (ADBC)."""
    order: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    text = re.sub(r"%\((\w+)\)s", number, text)
    return text, tuple(params[name] for name in order)


def clickhouse(name: str, **identifiers: str) -> str:
    """Text of ``include/sql/clickhouse/<name>.sql`` with validated identifiers substituted.

    ``on_cluster``, ``table_settings`` and ``mutations_source`` are clauses built by this package, not
    identifiers; every other keyword must be a plain identifier.
    """
    clauses = {"on_cluster", "table_settings", "mutations_source"}
    for key, value in identifiers.items():
        if key not in clauses:
            validate_identifier(value, key)
    return Template(_read(f"clickhouse/{name}.sql")).substitute(identifiers)


def on_cluster(cluster: str | None) -> str:
    return f"ON CLUSTER {validate_identifier(cluster, 'cluster')}" if cluster else ""


def mutations_source(cluster: str | None) -> str:
    if not cluster:
        return "system.mutations"
    return f"clusterAllReplicas('{validate_identifier(cluster, 'cluster')}', system.mutations)"
