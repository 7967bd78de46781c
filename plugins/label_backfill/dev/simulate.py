"""Simulate the production incident on real Postgres and ClickHouse, deterministically for a seed.

1. Create profiles, users and conversations (``small``: 3 customers x 14 days x 2,500 a day;
   ``alaska``: one customer, 1.5M conversations over 2026-01-01..2026-02-18; ``fleet``: ``--customers N``
   customers ``fleet-000``... (default 10) x 14 days x 200 a day, for the fleet benchmarks).
2. Label them with the reference job in watermark mode, one run per day, as the cron would (``fleet``: one
   range run per customer over the 14 days, so that many customers seed quickly).
3. Apply what happened in production afterwards: agent re-assignments, ``reservations-chat`` ->
   ``reservations`` reclassification, agents flagged as dev users, ``ended_at`` set back to null, source
   changes, conversations that were still open when labeled and ended later.
4. Re-run one day in range mode without deleting first (the seeds' 73% duplicate test).

``python -m label_backfill.dev.simulate --scale small --seed 7`` (flags default to the embedded stack).

It deletes the simulated customers' profiles, users and conversations in Postgres and drops their ClickHouse
databases, so it refuses any target that is not the embedded stack (``label_backfill.dev.stack``: its
running server's socket folder, its chdb directory) unless forced: ``--force-non-embedded`` on the command
line, ``force_non_embedded=True`` in Python (the compose stack's seed service does so).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
from label_conversations.job import JobConfig, connect_postgres, run
from pyarrow import csv as pa_csv

from label_backfill.chdb_lock import held
from label_backfill.clickhouse import LabelTable, read_table_name
from label_backfill.dev.stack import PRIVATE_UMASK, Stack, default_stack
from label_backfill.naming import DayRange, database_name, utc_midnight

FORCE_FLAG = "--force-non-embedded"

USECASES = ["reservations", "reservations-chat", "customer-care", "cargo", "central-baggage", "chat", "cco"]
USECASE_WEIGHTS = [0.56, 0.27, 0.102, 0.027, 0.022, 0.012, 0.007]
SOURCES = ["voice", "chat", "email"]
SOURCE_WEIGHTS = [0.62, 0.33, 0.05]


@dataclass(frozen=True)
class Scale:
    customers: tuple[tuple[str, str], ...]
    days: DayRange
    per_day: int
    agents: int
    cron: bool = True  # label day by day with the watermark; False: one range run per customer


SCALES = {
    "small": Scale(
        (("alaska-air", "us-east-1"), ("horizon-air", "us-west-2"), ("sun-country", "us-east-1")),
        DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 14)),
        2_500,
        120,
    ),
    "alaska": Scale(
        (("alaska-air", "us-east-1"),), DayRange(dt.date(2026, 1, 1), dt.date(2026, 2, 18)), 30_612, 1_500
    ),
}
FLEET_SCALE = "fleet"
FLEET_CUSTOMERS = 10  # the fleet scale's default; the seeds have 88 profiles


def fleet_scale(customers: int = FLEET_CUSTOMERS) -> Scale:
    """``customers`` small customers (``fleet-000``, ...; two regions) over 2026-02-01..14, 200 a day."""
    if customers < 1:
        raise ValueError(f"the fleet scale needs at least one customer, not {customers}")
    regions = ("us-east-1", "us-west-2")
    return Scale(
        tuple((f"fleet-{i:03d}", regions[i % 2]) for i in range(customers)),
        DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 14)),
        200,
        20,
        cron=False,
    )


def scale_of(name: str, customers: int | None = None) -> Scale:
    """The named scale; ``customers`` only for the fleet scale."""
    if name == FLEET_SCALE:
        return fleet_scale(FLEET_CUSTOMERS if customers is None else customers)
    if customers is not None:
        raise ValueError(f"--customers applies to the {FLEET_SCALE} scale only, not {name}")
    return SCALES[name]


@dataclass
class Incident:
    scale: str
    seed: int
    customers: list[str]
    days: DayRange
    conversations: int = 0
    labeled_rows: int = 0
    changes: dict[str, int] = field(default_factory=dict)
    rerun_day: dt.date | None = None
    rerun_rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [
            f"simulated incident: scale={self.scale} seed={self.seed} customers={','.join(self.customers)} "
            f"days={self.days}",
            f"  conversations created: {self.conversations:,}; labeled by the cron (watermark mode): "
            f"{self.labeled_rows:,} rows",
        ]
        lines += [f"  {name}: {n:,}" for name, n in self.changes.items()]
        lines.append(
            f"  re-ran {self.rerun_day} in range mode WITHOUT delete: {self.rerun_rows:,} rows written again"
        )
        lines.append("  timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in self.seconds.items()))
        return "\n".join(lines)


def _conversations(customer: str, scale: Scale, rng: np.random.Generator) -> pa.Table:
    n_days = len(scale.days)
    n = scale.per_day * n_days
    day0 = int(utc_midnight(scale.days.first).timestamp() * 1000)
    # Busier mid-day, a sprinkle at 23:5x so some conversations cross midnight (start-day rule).
    day_index = np.repeat(np.arange(n_days, dtype=np.int64), scale.per_day)
    offset = np.clip(rng.normal(14 * 3600_000, 4 * 3600_000, n), 0, 86_399_999).astype(np.int64)
    offset[rng.random(n) < 0.003] = 86_100_000 + rng.integers(0, 299_000, 1)[0]
    start = day0 + day_index * 86_400_000 + offset
    end = start + rng.integers(60_000, 3_600_000, n)
    still_open = rng.random(n) < 0.01
    ids = [f"{customer}-c{i:08d}" for i in range(n)]
    agents = rng.integers(0, scale.agents, n)
    return pa.table(
        {
            "conversation_id": ids,
            "customer_id": pa.array([customer] * n),
            "agent_user_id": [f"{customer}-agent-{a:05d}" for a in agents],
            "usecase_id": np.array(USECASES)[rng.choice(len(USECASES), n, p=USECASE_WEIGHTS)],
            "source": np.array(SOURCES)[rng.choice(len(SOURCES), n, p=SOURCE_WEIGHTS)],
            "started_at": pa.array(start).cast(pa.timestamp("ms", tz="UTC")),
            "ended_at": pa.array(end, mask=still_open).cast(pa.timestamp("ms", tz="UTC")),
        }
    )


def _copy_in(pg: Any, table: str, data: pa.Table) -> None:
    buf = io.BytesIO()
    pa_csv.write_csv(data, buf, pa_csv.WriteOptions(include_header=False))
    with (
        pg.cursor() as cur,
        cur.copy(f"COPY {table} ({', '.join(data.column_names)}) FROM STDIN (FORMAT CSV)") as cp,
    ):
        cp.write(buf.getvalue())


def _pick(column: str, seed: int, salt: str, per_mille: int) -> str:
    """A deterministic, seed-dependent SQL predicate selecting ~per_mille/1000 of the rows."""
    return (
        f"(('x' || substr(md5({column} || ':{seed}:{salt}'), 1, 8))::bit(32)::int & 1023) "
        f"< {per_mille * 1024 // 1000}"
    )


def _apply_production_changes(pg: Any, customer: str, scale: Scale, seed: int) -> dict[str, int]:
    c = {"customer": customer}
    steps = {
        "agent re-assignments": (
            "UPDATE conversations SET agent_user_id = %(customer)s || '-agent-' || lpad(((('x' || substr(md5("
            f"conversation_id || '{seed}'), 9, 6))::bit(24)::int %% {scale.agents}))::text, 5, '0') "
            f"WHERE customer_id = %(customer)s AND ended_at IS NOT NULL AND {_pick('conversation_id', seed, 'agent', 15)}"
        ),
        "usecase reclassified reservations-chat -> reservations": (
            "UPDATE conversations SET usecase_id = 'reservations' WHERE customer_id = %(customer)s "
            f"AND usecase_id = 'reservations-chat' AND {_pick('conversation_id', seed, 'usecase', 250)}"
        ),
        "agents later flagged as dev users": (
            f"UPDATE users SET is_dev_user = true WHERE customer_id = %(customer)s AND NOT is_dev_user "
            f"AND {_pick('user_id', seed, 'dev', 30)}"
        ),
        "ended_at set back to null": (
            "UPDATE conversations SET ended_at = NULL WHERE customer_id = %(customer)s AND ended_at IS NOT NULL "
            f"AND {_pick('conversation_id', seed, 'reopen', 4)}"
        ),
        "source changed (voice -> email)": (
            "UPDATE conversations SET source = 'email' WHERE customer_id = %(customer)s AND source = 'voice' "
            f"AND {_pick('conversation_id', seed, 'email', 3)}"
        ),
        "source changed (chat -> voice)": (
            "UPDATE conversations SET source = 'voice' WHERE customer_id = %(customer)s AND source = 'chat' "
            f"AND {_pick('conversation_id', seed, 'voice', 3)}"
        ),
        "open conversations that ended after labeling": (
            "UPDATE conversations SET ended_at = started_at + interval '20 minutes' WHERE customer_id = %(customer)s "
            f"AND ended_at IS NULL AND {_pick('conversation_id', seed, 'late', 600)}"
        ),
    }
    done = {}
    with pg.cursor() as cur:
        for name, statement in steps.items():
            cur.execute(statement, c)
            done[name] = cur.rowcount
    pg.commit()
    return done


class NotEmbeddedError(RuntimeError):
    """The simulator was pointed at a database that is not the embedded stack's, without forcing."""


def _redacted(dsn: str) -> str:
    """``scheme://host:port`` of a URL-like DSN, or ``host=...`` of a conninfo: never a password."""
    if "://" in dsn:
        parts = urlsplit(dsn)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    from psycopg.conninfo import conninfo_to_dict

    try:
        return f"host={conninfo_to_dict(dsn).get('host')}"
    except Exception:
        return "<unparsable conninfo>"


def postgres_target_problem(host: str | None, stack: Stack) -> str | None:
    """Why a Postgres host (a socket folder for the embedded server) is not ``stack``'s running server."""
    socket_dir = stack.recorded_socket_dir()
    if socket_dir is None:
        return f"Postgres host {host!r}: the embedded stack in {stack.root} has no server running"
    if not host or not host.startswith("/") or Path(host).resolve() != socket_dir.resolve():
        return f"Postgres host {host!r} is not the embedded stack's server (socket folder {socket_dir})"
    return None


def clickhouse_target_problem(uri: str | None, stack: Stack) -> str | None:
    """Why a ClickHouse client URI / DSN is not ``stack``'s in-process chdb directory."""
    expected = stack.chdb_path.resolve()
    if not uri or not uri.startswith("chdb://"):
        return f"ClickHouse {_redacted(uri or '')} is not the embedded stack's in-process chdb ({expected})"
    if Path(uri.removeprefix("chdb://")).resolve() != expected:
        return f"ClickHouse {uri} is another chdb directory than the embedded stack's ({expected})"
    return None


def refuse_unless_embedded(pg: Any, clickhouse: Any, stack: Stack | None = None) -> None:
    """Raise :class:`NotEmbeddedError` unless ``pg`` is connected to the embedded stack's Postgres server
    and ``clickhouse`` is its chdb (checked before anything is written)."""
    stack = stack or default_stack()
    problems = [
        problem
        for problem in (
            postgres_target_problem(getattr(getattr(pg, "info", None), "host", None), stack),
            clickhouse_target_problem(
                getattr(clickhouse, "uri", None) or getattr(clickhouse, "url", None), stack
            ),
        )
        if problem
    ]
    if problems:
        raise NotEmbeddedError(_refusal(problems))


def _refusal(problems: list[str]) -> str:
    return (
        "refusing to simulate: it deletes the simulated customers' profiles, users and conversations and "
        "drops their ClickHouse databases, and the target is not the embedded stack: "
        + "; ".join(problems)
        + f". Pass {FORCE_FLAG} (Python: force_non_embedded=True) to run it there anyway."
    )


def simulate(
    pg: Any,
    clickhouse: Any,
    *,
    scale_name: str = "small",
    seed: int = 7,
    cluster: str | None = None,
    table: str | None = None,
    job_pg: Any | None = None,
    force_non_embedded: bool = False,
    stack: Stack | None = None,
    customers: int | None = None,
) -> Incident:
    """Reset the scale's customers and play the incident.

    :param pg: a psycopg connection (set-up and production changes).
    :param job_pg: the job's ADBC connection (default: opened from ``pg``'s conninfo, which has no password).
    :param force_non_embedded: run even when ``pg`` / ``clickhouse`` are not the embedded stack's (``stack``,
        default the one of ``LABEL_BACKFILL_LOCAL_DIR``); without it such targets raise
        :class:`NotEmbeddedError` before anything is written.
    :param customers: how many customers the ``fleet`` scale creates (default ``FLEET_CUSTOMERS``).
    """
    if not force_non_embedded:
        refuse_unless_embedded(pg, clickhouse, stack)
    if job_pg is None:
        with connect_postgres(pg.info.dsn) as own:
            return simulate(
                pg, clickhouse, scale_name=scale_name, seed=seed, cluster=cluster, table=table, job_pg=own,
                force_non_embedded=True, customers=customers,  # checked above
            )  # fmt: skip
    scale = scale_of(scale_name, customers)
    rng = np.random.default_rng(seed)
    incident = Incident(scale_name, seed, [c for c, _ in scale.customers], scale.days)
    t = time.monotonic()
    with pg.cursor() as cur:
        for customer, region in scale.customers:
            for tbl in ("conversations", "users", "profiles"):
                cur.execute(f"DELETE FROM {tbl} WHERE customer_id = %s", (customer,))  # noqa: S608 (fixed names)
            cur.execute("INSERT INTO profiles (customer_id, region) VALUES (%s, %s)", (customer, region))
            users = pa.table(
                {
                    "user_id": [f"{customer}-agent-{a:05d}" for a in range(scale.agents)],
                    "customer_id": [customer] * scale.agents,
                    "is_dev_user": (rng.random(scale.agents) < 0.02).tolist(),
                }
            )
            _copy_in(pg, "users", users)
            data = _conversations(customer, scale, rng)
            _copy_in(pg, "conversations", data)
            incident.conversations += data.num_rows
            table_ = LabelTable(clickhouse, database_name(customer, region), cluster)
            on_cluster = f" ON CLUSTER {cluster} SYNC" if cluster else ""  # every shard, not just this one
            clickhouse.command(f"DROP DATABASE IF EXISTS {table_.database}{on_cluster}")
            table_.create()
        cur.execute("ANALYZE conversations")
    pg.commit()
    incident.seconds["create"] = time.monotonic() - t

    t = time.monotonic()
    write_table = table or read_table_name(cluster)
    for customer, _ in scale.customers:
        if not scale.cron:  # many customers: one range run each (the incident's drift comes after)
            whole = JobConfig(
                customer=customer,
                table=write_table,
                range_start=utc_midnight(scale.days.first),
                range_end=utc_midnight(scale.days.last + dt.timedelta(days=1)),
            )
            incident.labeled_rows += run(whole, job_pg, clickhouse).rows
            continue
        for day in scale.days.days:  # the cron, once a day, each run picking up from its watermark
            now = utc_midnight(day + dt.timedelta(days=1))
            result = run(
                JobConfig(customer=customer, table=write_table, now=now),
                job_pg,
                clickhouse,
                clock=lambda n=now: n,
            )
            incident.labeled_rows += result.rows
    incident.seconds["label (cron)"] = time.monotonic() - t

    t = time.monotonic()
    for customer, _ in scale.customers:
        for name, n in _apply_production_changes(pg, customer, scale, seed).items():
            incident.changes[name] = incident.changes.get(name, 0) + n
    incident.seconds["production changes"] = time.monotonic() - t

    t = time.monotonic()
    incident.rerun_day = scale.days.first + dt.timedelta(days=len(scale.days) // 2)
    customer = scale.customers[0][0]
    rerun = JobConfig(
        customer=customer,
        table=write_table,
        range_start=utc_midnight(incident.rerun_day),
        range_end=utc_midnight(incident.rerun_day + dt.timedelta(days=1)),
    )
    incident.rerun_rows = run(rerun, job_pg, clickhouse).rows
    incident.seconds["range re-run without delete"] = time.monotonic() - t
    return incident


def main(argv: list[str] | None = None) -> int:
    import clickhouse_connect
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    parser = argparse.ArgumentParser(
        prog="python -m label_backfill.dev.simulate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", choices=sorted([*SCALES, FLEET_SCALE]), default="small")
    parser.add_argument(
        "--customers",
        type=int,
        help=f"{FLEET_SCALE} scale only: how many customers (default {FLEET_CUSTOMERS})",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--postgres-dsn", help="default: the embedded stack (started if needed)")
    parser.add_argument("--clickhouse-dsn", help="default: the embedded stack's chdb directory")
    parser.add_argument("--clickhouse-cluster", default=None, help="create cluster-mode tables ON CLUSTER")
    parser.add_argument(
        FORCE_FLAG,
        action="store_true",
        help="run against DSNs that are not the embedded stack (it DELETES the simulated customers' rows "
        "and DROPS their ClickHouse databases there)",
    )
    args = parser.parse_args(argv)
    try:
        scale_of(args.scale, args.customers)
    except ValueError as err:
        parser.error(str(err))
    os.umask(PRIVATE_UMASK)  # the chdb files it writes: the owner's only
    stack = default_stack()
    if not args.force_non_embedded:  # refuse before connecting anywhere
        problems = []
        if args.postgres_dsn:
            try:
                host = conninfo_to_dict(args.postgres_dsn).get("host")
            except psycopg.ProgrammingError:
                host = None
            problems.append(postgres_target_problem(host, stack))
        if args.clickhouse_dsn:
            problems.append(clickhouse_target_problem(args.clickhouse_dsn, stack))
        if problems := [p for p in problems if p]:
            parser.error(_refusal(problems))
    pg_dsn = args.postgres_dsn or stack.start_postgres()
    clickhouse = (
        clickhouse_connect.get_client(dsn=args.clickhouse_dsn)
        if args.clickhouse_dsn
        else stack.clickhouse_client()
    )
    # the stack's chdb: held for the whole simulation (one open, not one per insert); a running Airflow's
    # tasks wait for it (label_backfill.chdb_lock)
    with psycopg.connect(pg_dsn) as pg, held(clickhouse, "simulate") as clickhouse:
        incident = simulate(
            pg,
            clickhouse,
            scale_name=args.scale,
            seed=args.seed,
            cluster=args.clickhouse_cluster,
            force_non_embedded=args.force_non_embedded,
            stack=stack,
            customers=args.customers,
        )
    print(incident.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
