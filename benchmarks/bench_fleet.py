"""make bench, the fleet phases: many small customers on the embedded stack, each phase in its own folder.

(a) one fleet repair (``conversation_labels_fleet_backfill``, dry_run off) of ``--customers`` (10) customers x
    14 days under the real scheduler (``scripts/airflow.sh --background``: scheduler, LocalExecutor,
    triggerer, api-server), driven through the REST API: wall time from the trigger to the fleet's end, wall
    per customer, and the child backfill runs' durations (start -> end of each run, from the REST API).
(b) the nightly drift check over ``--drift-customers`` (88, the seeds' profile count) customers x 14 days,
    run by ``airflow dags test`` (in-process, one task at a time): the whole run and its check_customer sum.

Both seed with ``label_backfill.dev.simulate --scale fleet --customers N`` (200 conversations a day each).
Prints a table and writes benchmarks/results/fleet-<timestamp>.json, with the load average before and after
(the machine may be shared: read the figures with it).

    .venv/bin/python benchmarks/bench_fleet.py [--customers 10] [--drift-customers 88]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python")
AIRFLOW = str(REPO / ".venv" / "bin" / "airflow")
LOCAL = Path(os.environ.get("LABEL_BACKFILL_BENCH_DIR", REPO / ".local" / "bench")) / "fleet"
FLEET, BACKFILL, DRIFT = (
    "conversation_labels_fleet_backfill",
    "conversation_labels_backfill",
    "conversation_labels_drift_check",
)
FIRST, LAST = "2026-02-01", "2026-02-14"  # the fleet scale's days (label_backfill.dev.simulate.fleet_scale)
DRIFT_LOGICAL_DATE = "2026-02-15T04:00:00+00:00"  # checks 2026-02-01..14 with lookback_days 14

sys.path.insert(0, str(REPO / "plugins"))
from label_backfill.dev.airflow_api import AirflowApi  # noqa: E402  (stdlib only: no chdb, no Airflow)
from label_backfill.reports import safe_name  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import stack_env  # noqa: E402  (the same environment as the other phases)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(argv: list[str], env: dict[str, str], what: str) -> tuple[str, float]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode:
        print(proc.stdout[-4000:], proc.stderr[-4000:])
        raise SystemExit(f"{what} failed ({proc.returncode})")
    return proc.stdout, time.monotonic() - started


def _seed(env: dict[str, str], customers: int) -> float:
    argv = [PY, "-m", "label_backfill.dev.simulate", "--scale", "fleet", "--customers", str(customers)]
    out, seconds = _run(argv, env, "simulate --scale fleet")
    print("    " + out.strip().splitlines()[0], flush=True)
    return seconds


def _when(value: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def fleet_repair(customers: int, timeout: float) -> dict[str, Any]:
    """(a): seed, start Airflow, one fleet repair of every customer, stop Airflow."""
    folder = LOCAL / "repair"
    env = stack_env(folder, AIRFLOW_PORT=str(_free_port()), AIRFLOW_READY_TIMEOUT="300")
    stop = ["bash", "scripts/airflow.sh", "stop"]
    subprocess.run(stop, env=env, cwd=REPO, capture_output=True, check=False)  # an earlier bench's instance
    print(
        f"(a) fleet repair: {customers} customers x {FIRST}..{LAST} under the scheduler ({folder})",
        flush=True,
    )
    seed_s = _seed(env, customers)
    try:
        _, start_s = _run(
            ["bash", "scripts/airflow.sh", "--background"], env, "scripts/airflow.sh --background"
        )
        password = (folder / "airflow-ui-password").read_text().strip()
        api = AirflowApi(f"http://127.0.0.1:{env['AIRFLOW_PORT']}", "admin", password)
        for dag_id in (FLEET, BACKFILL):
            api.unpause(dag_id)
        names = [f"fleet-{i:03d}" for i in range(customers)]
        conf = {
            "customers": names,
            "start_date": FIRST,
            "end_date": LAST,
            "dry_run": False,
            "max_parallel_customers": min(customers, 32),
        }
        started = time.monotonic()
        run_id = api.trigger(FLEET, conf)
        state = api.wait(FLEET, run_id, timeout, poll=5)
        wall = time.monotonic() - started
        report = json.loads((folder / "reports" / FLEET / f"{safe_name(run_id)}.json").read_text())
        children = [r for r in api.runs(BACKFILL) if r["dag_run_id"].endswith(run_id)]
        durations = sorted(
            _when(r["end_date"]) - _when(r["start_date"])
            for r in children
            if r["start_date"] and r["end_date"]
        )
        fleet_run = api.run(FLEET, run_id)
    finally:
        subprocess.run(stop, env=env, cwd=REPO, capture_output=True, check=False)
    verdicts: dict[str, int] = {}
    for v in report["customers"]:
        verdicts[v["verdict"]] = verdicts.get(v["verdict"], 0) + 1
    return {
        "phase": f"fleet repair, {customers} customers x 14 days (scheduler)",
        "customers": customers,
        "state": state,
        "verdicts": verdicts,
        "seed_seconds": round(seed_s, 1),
        "airflow_start_seconds": round(start_s, 1),
        "seconds": round(wall, 1),
        "fleet_run_seconds": round(_when(fleet_run["end_date"]) - _when(fleet_run["start_date"]), 1),
        "seconds_per_customer": round(wall / customers, 1),
        "child_runs": len(durations),
        "child_run_seconds": {
            "min": round(durations[0], 1) if durations else None,
            "median": round(statistics.median(durations), 1) if durations else None,
            "max": round(durations[-1], 1) if durations else None,
            "sum": round(sum(durations), 1),
        },
    }


def drift_check(customers: int) -> dict[str, Any]:
    """(b): seed, then the drift check over every profile with ``airflow dags test``."""
    folder = LOCAL / "drift"
    env = stack_env(folder)
    print(
        f"(b) drift check: {customers} customers x {FIRST}..{LAST}, airflow dags test ({folder})", flush=True
    )
    seed_s = _seed(env, customers)
    _run([AIRFLOW, "db", "migrate"], env, "airflow db migrate")
    conf = json.dumps({"lookback_days": 14, "auto_repair": False})  # customers empty: every profile
    started = time.monotonic()
    proc = subprocess.run(
        [AIRFLOW, "dags", "test", DRIFT, DRIFT_LOGICAL_DATE, "-c", conf],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started  # it fails when a customer drifted (the incident's: all of them)
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    run_id = db.execute(
        "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DRIFT,)
    ).fetchone()[0]
    rows = db.execute(
        "SELECT task_id, sum(duration), count(*), group_concat(DISTINCT state) FROM task_instance "
        "WHERE dag_id = ? AND run_id = ? GROUP BY task_id",
        (DRIFT, run_id),
    ).fetchall()
    tasks = {t: {"seconds": round(d or 0.0, 2), "instances": n, "states": s} for t, d, n, s in rows}
    check = tasks.get("check_customer", {})
    return {
        "phase": f"drift check, {customers} customers x 14 days (airflow dags test)",
        "customers": customers,
        "exit_code": proc.returncode,
        "seed_seconds": round(seed_s, 1),
        "seconds": round(wall, 1),
        "check_customer_sum_seconds": check.get("seconds"),
        "check_customer_instances": check.get("instances"),
        "check_customer_per_customer_seconds": round(check["seconds"] / check["instances"], 2)
        if check.get("instances")
        else None,
        "tasks": tasks,
    }


def run(customers: int = 10, drift_customers: int = 88, timeout: float = 3600) -> dict[str, Any]:
    """Both phases; print the table and write benchmarks/results/fleet-<timestamp>.json."""
    os.umask(0o077)  # like scripts/airflow-env.sh: the bench's data and reports are private
    load_before = os.getloadavg()
    results = [fleet_repair(customers, timeout), drift_check(drift_customers)]
    load_after = os.getloadavg()
    a, b = results
    print("\n| phase | seconds | per customer | detail |\n|---|---|---|---|")
    child = a["child_run_seconds"]
    print(
        f"| {a['phase']} | {a['seconds']} | {a['seconds_per_customer']} | {a['state']}, {a['verdicts']}; child runs "
        f"{a['child_runs']}: min {child['min']} / median {child['median']} / max {child['max']} / sum {child['sum']} s |"
    )
    print(
        f"| {b['phase']} | {b['seconds']} | {b['check_customer_per_customer_seconds']} | check_customer sum "
        f"{b['check_customer_sum_seconds']} s over {b['check_customer_instances']} instances |"
    )
    load = f"load average before {load_before[0]:.1f}/{load_before[1]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f} (1/5 min)"
    print(f"{os.cpu_count()} cores; {load}")
    out = REPO / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"fleet-{time.strftime('%Y%m%dT%H%M%S')}.json"
    doc = {"results": results, "cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after}
    path.write_text(json.dumps(doc, indent=2))
    print(f"written {path}")
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10, help="customers of the fleet repair")
    parser.add_argument("--drift-customers", type=int, default=88, help="customers of the drift check")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds the fleet repair may take")
    args = parser.parse_args(argv)
    run(args.customers, args.drift_customers, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
