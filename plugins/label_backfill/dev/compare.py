"""``python -m label_backfill.dev.compare --customer C --start-date D --end-date D [--json]``.

Compares Postgres and ClickHouse of the embedded stack for one customer's days and prints the per-day table
and usecase distribution, or the JSON document. (``python -m label_backfill.compare``, its former name, still
forwards here with a deprecation warning.)
"""

from __future__ import annotations

import argparse
import json
import sys

from label_backfill.compare import ClickHouseSide, PostgresSide, compare
from label_backfill.naming import DayRange, database_name, parse_day, validate_customer_id


def main(argv: list[str] | None = None) -> int:
    import psycopg

    from label_backfill.dev.stack import default_stack

    parser = argparse.ArgumentParser(
        prog="python -m label_backfill.dev.compare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customer", required=True)
    parser.add_argument("--start-date", required=True)
    parser.add_argument("--end-date", required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--sample-size", type=int, default=5)
    args = parser.parse_args(argv)
    customer = validate_customer_id(args.customer)
    days = DayRange(parse_day(args.start_date, "start_date"), parse_day(args.end_date, "end_date"))
    stack = default_stack()
    with psycopg.connect(stack.start_postgres()) as pg:
        postgres = PostgresSide(pg)
        region = postgres.region(customer)
        if region is None:
            print(f"customer: no profile {customer!r} in Postgres", file=sys.stderr)
            return 2
        result = compare(
            postgres,
            ClickHouseSide(stack.clickhouse_client(), database_name(customer, region)),
            customer,
            days,
            sample_size=args.sample_size,
        )
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.render_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
