"""The SQL of the package lives next to this module (``postgres/*.sql``, ``clickhouse/*.sql``, package data
of the wheel); this module finds and renders it.

Identifiers are spliced with ``string.Template`` (``$database``) only after validation; every value is a
bound parameter (``%(x)s`` for Postgres, ``{x:Type}`` for ClickHouse).

The comparison's shared definitions are spliced the same way, so every query that uses one uses the same:
``$eligible`` (Postgres: the eligible conversations, ``postgres/eligible.sql``), ``$fingerprint`` (a
conversation's 60-bit fingerprint) and ``$columns`` (its compared columns), both generated per engine from
``COMPARED``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from label_backfill.naming import validate_identifier


def _package_sql_dir() -> Path:
    """This package's folder, found through ``importlib.resources`` (the same in the repository, an editable
    or a wheel install). A real folder: the backfill DAG gives it to Airflow as ``template_searchpath``."""
    folder = resources.files(__name__)
    if not isinstance(folder, Path):
        raise RuntimeError(
            f"{__name__} is not installed as plain files ({folder!r}); install the wheel unzipped"
        )
    return folder.resolve()


# LABEL_BACKFILL_SQL_DIR: another folder with the same layout (postgres/, clickhouse/) overrides the package's.
SQL_DIR = Path(os.environ.get("LABEL_BACKFILL_SQL_DIR") or _package_sql_dir())


@dataclass(frozen=True)
class Compared:
    """A column both sides must agree on: its name in the comparison's rows, its column in Postgres'
    ``conversations`` and in ClickHouse's label table; ``millis``: a timestamp, compared as integer epoch
    milliseconds (the precision ClickHouse keeps)."""

    name: str
    postgres: str
    clickhouse: str
    millis: bool = False

    def __post_init__(self) -> None:
        for value in (self.name, self.postgres, self.clickhouse):
            validate_identifier(value, "compared column")


# THE compared columns: a clean day's fingerprint and a drifted day's row-by-row comparison cover exactly
# these, so the two can never disagree on what "equal" means.
KEY = Compared("conversation_id", "conversation_id", "conversation_id")
LABELS = (
    Compared("agent_user_id", "agent_user_id", "agent_user_id"),
    Compared("usecase_id", "usecase_id", "usecase_id"),
    Compared("source", "source", "source"),
    Compared("start_ms", "started_at", "conversation_start_time", millis=True),
    Compared("end_ms", "ended_at", "conversation_end_time", millis=True),
)
COMPARED = (KEY, *LABELS)


def _postgres_value(column: Compared) -> str:
    if column.millis:
        return f"floor(extract(epoch FROM c.{column.postgres}) * 1000)::bigint"
    return f"c.{column.postgres}"


def _clickhouse_value(column: Compared) -> str:
    if column.millis:
        return f"toUnixTimestamp64Milli({column.clickhouse})"
    return f"toString({column.clickhouse})"  # LowCardinality(String) -> String


def postgres_fingerprint(columns: tuple[Compared, ...] = COMPARED) -> str:
    """The first 60 bits of md5('v1|v2|...') as a bigint; summed per day into numeric (no overflow)."""
    text = " || '|' || ".join(
        f"{_postgres_value(c)}::text" if c.millis else _postgres_value(c) for c in columns
    )
    return f"('x' || substr(md5({text}), 1, 15))::bit(60)::bigint"


def clickhouse_fingerprint(columns: tuple[Compared, ...] = COMPARED) -> str:
    """The same 60 bits as ``postgres_fingerprint``, as a UInt128 (a UInt64 sum per day overflows)."""
    text = ", '|', ".join(
        f"toString({_clickhouse_value(c)})" if c.millis else _clickhouse_value(c) for c in columns
    )
    return f"toUInt128(bitShiftRight(reinterpretAsUInt64(reverse(substring(MD5(concat({text})), 1, 8))), 4))"


def postgres_columns(columns: tuple[Compared, ...] = COMPARED) -> str:
    return ",\n       ".join(f"{_postgres_value(c)} AS {c.name}" for c in columns)


def clickhouse_columns(columns: tuple[Compared, ...] = COMPARED) -> str:
    return ",\n       ".join(f"{_clickhouse_value(c)} AS {c.name}" for c in columns)


@cache
def _read(name: str) -> str:
    return (SQL_DIR / name).read_text()


def postgres(name: str) -> str:
    """Text of ``postgres/<name>.sql`` (values bound as ``%(x)s``) with the shared definitions
    (``$eligible``, ``$fingerprint``, ``$columns``) spliced in."""
    text = _read(f"postgres/{name}.sql")
    if not re.search(r"\$(eligible|fingerprint|columns)\b", text):
        return text  # e.g. schema.sql, whose $$ must stay as written
    eligible = "\n".join(
        line for line in _read("postgres/eligible.sql").splitlines() if not line.startswith("--")
    )
    return Template(text).substitute(
        eligible=eligible, fingerprint=postgres_fingerprint(), columns=postgres_columns()
    )


def state(name: str) -> str:
    """Text of ``state/<name>.sql``: the package's own state (the customer leases) in the state database."""
    return _read(f"state/{name}.sql")


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
    """Text of ``clickhouse/<name>.sql`` with validated identifiers and the shared definitions
    (``$fingerprint``, ``$columns``) substituted.

    ``on_cluster``, ``table_settings`` and ``mutations_source`` are clauses built by this package, not
    identifiers; every other keyword must be a plain identifier.
    """
    clauses = {"on_cluster", "table_settings", "mutations_source"}
    for key, value in identifiers.items():
        if key not in clauses:
            validate_identifier(value, key)
    return Template(_read(f"clickhouse/{name}.sql")).substitute(
        identifiers, fingerprint=clickhouse_fingerprint(), columns=clickhouse_columns()
    )


def on_cluster(cluster: str | None) -> str:
    return f"ON CLUSTER {validate_identifier(cluster, 'cluster')}" if cluster else ""


def mutations_source(cluster: str | None) -> str:
    if not cluster:
        return "system.mutations"
    return f"clusterAllReplicas('{validate_identifier(cluster, 'cluster')}', system.mutations)"


def statements(text: str) -> list[str]:
    """The statements of a SQL file: ``--`` comment lines dropped, split on ``;``, whitespace collapsed."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [" ".join(part.split()) for part in code.split(";") if part.strip()]


def clickhouse_grants(
    database: str, user: str, *, cluster: bool = False, local_runner: bool = False
) -> list[str]:
    """The GRANT statements the DAGs' ClickHouse user needs in one customer database (``clickhouse/grants*.sql``):
    ``cluster`` adds the Distributed table, ``ON CLUSTER`` and ``clusterAllReplicas``; ``local_runner`` the
    reference job's INSERT (embedded stack only)."""
    names = ["grants"]
    names += ["grants_cluster"] if cluster else []
    names += ["grants_local_runner"] if local_runner else []
    names += ["grants_local_runner_cluster"] if cluster and local_runner else []
    return [stmt for name in names for stmt in statements(clickhouse(name, database=database, user=user))]


def postgres_readonly_role(role: str, database: str) -> list[str]:
    """The statements that make ``role`` the DAGs' read-only Postgres role (``postgres/readonly_role.sql``)."""
    identifiers = {
        "role": validate_identifier(role, "role"),
        "database": validate_identifier(database, "database"),
    }
    return statements(Template(_read("postgres/readonly_role.sql")).substitute(identifiers))
