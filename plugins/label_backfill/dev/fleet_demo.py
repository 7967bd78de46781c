"""make demo-fleet: one fleet repair of the three simulated customers under the real scheduler.

Drives an Airflow started by ``scripts/airflow.sh --background`` (``scripts/demo-fleet.sh`` does the set-up)
through its REST API: the fleet's dry run first (the plan), then the repair; prints one line per customer
with its verdict, and exits non-zero unless every customer is EXACT.

    python -m label_backfill.dev.fleet_demo --url http://127.0.0.1:8080 --password-file .local/...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from label_backfill.dev.airflow_api import AirflowApi
from label_backfill.reports import safe_name
from label_backfill.settings import BACKFILL_DAG_ID, FLEET_DAG_ID

CUSTOMERS = ["alaska-air", "horizon-air", "sun-country"]  # the small scale's customers (dev.simulate)
SPAN = {"start_date": "2026-02-01", "end_date": "2026-02-14"}


def fleet_report(report_dir: Path, run_id: str) -> dict:
    return json.loads((report_dir / FLEET_DAG_ID / f"{safe_name(run_id)}.json").read_text())


def run_fleet(api: AirflowApi, report_dir: Path, conf: dict, timeout: float) -> tuple[str, dict, float]:
    started = time.monotonic()
    run_id = api.trigger(FLEET_DAG_ID, conf)
    state = api.wait(FLEET_DAG_ID, run_id, timeout)
    return state, fleet_report(report_dir, run_id), time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password-file", required=True, type=Path)
    parser.add_argument(
        "--report-dir", type=Path, default=Path(os.environ.get("LABEL_BACKFILL_REPORT_DIR", "reports"))
    )
    parser.add_argument("--timeout", type=float, default=1200)
    args = parser.parse_args(argv)
    api = AirflowApi(args.url, args.user, args.password_file.read_text().strip())
    for dag_id in (FLEET_DAG_ID, BACKFILL_DAG_ID):
        api.unpause(dag_id)
    conf = {"customers": CUSTOMERS, **SPAN}

    print(f"== fleet dry run: {', '.join(CUSTOMERS)} {SPAN['start_date']}..{SPAN['end_date']}", flush=True)
    state, plan, seconds = run_fleet(api, args.report_dir, conf, args.timeout)
    for p in plan["plans"]:
        print(
            f"  {p['customer']:<14} {p['status']:<8} drifted days {len(p['drifted_days']):>2}  "
            f"delete {p['delete_rows']:>7,}  rewrite {p['rewrite_rows']:>7,}  {' '.join(p['problems'])[:120]}"
        )
    t = plan["totals"]
    print(
        f"  plan: {state} in {seconds:.0f} s; would delete {t['delete_rows']:,} rows, rewrite {t['rewrite_rows']:,}"
    )

    print("== fleet repair (dry_run=false)", flush=True)
    state, result, seconds = run_fleet(api, args.report_dir, {**conf, "dry_run": False}, args.timeout)
    for v in result["customers"]:
        print(
            f"  {v['customer']:<14} {v['start_date']}..{v['end_date']}  {v['verdict']:<10} {v['report'] or v['why']}"
        )
    print(f"fleet {result['verdict']} ({state}) in {seconds:.0f} s; report {args.report_dir / FLEET_DAG_ID}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
