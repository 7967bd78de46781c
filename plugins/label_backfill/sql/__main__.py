"""Print the grants the package needs: ``python -m label_backfill.sql grants --database DB --user USER
[--cluster] [--local-runner]`` (ClickHouse, per customer database) or ``readonly-role --role ROLE
--database DB`` (Postgres); ``state-table`` prints the lease table of the state database (connection
``label_backfill_state``), for a role that may not create it itself."""

from __future__ import annotations

import argparse
import sys

from label_backfill import sql


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m label_backfill.sql", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grants = commands.add_parser("grants", help="ClickHouse: the DAGs' user in one customer database")
    grants.add_argument("--database", required=True)
    grants.add_argument("--user", required=True)
    grants.add_argument("--cluster", action="store_true", help="LABEL_BACKFILL_CLICKHOUSE_CLUSTER is set")
    grants.add_argument("--local-runner", action="store_true", help="LABEL_BACKFILL_JOB_RUNNER=local")
    role = commands.add_parser("readonly-role", help="Postgres: the DAGs' read-only role")
    role.add_argument("--role", required=True)
    role.add_argument("--database", required=True)
    commands.add_parser(
        "state-table", help="Postgres: the state database's lease table (label_backfill_state)"
    )
    args = parser.parse_args(argv)
    if args.command == "state-table":
        print(sql.state("leases"), end="")
        return 0
    if args.command == "grants":
        found = sql.clickhouse_grants(
            args.database, args.user, cluster=args.cluster, local_runner=args.local_runner
        )
    else:
        found = sql.postgres_readonly_role(args.role, args.database)
    print("".join(f"{statement};\n" for statement in found), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
