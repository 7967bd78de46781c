"""The fleet repair and the customer leases under the real scheduler (one Airflow for the module).

a. A fleet over three customers: one refused by the guard (never deleted), one whose day fails once and
   succeeds on its retry, one plain: REFUSED, EXACT, EXACT, checked again by tests.helpers.oracle_mismatches
   in a subprocess once the fleet ended (no task of the instance holds chdb then).
b. Two backfill runs of one customer triggered at once: the second waits in claim_customer until the first
   released it, so their [delete_range start, last label_day end] never overlap, and both succeed; a run of
   another customer triggered at the same moment proceeds meanwhile.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from label_backfill.reports import safe_name

from tests.airflow_instance import run_on_stack, table_digest
from tests.scheduler.conftest import FAULT_DAY, REFUSED_CUSTOMER, REFUSED_DAY, Scheduled

pytestmark = [pytest.mark.scheduler, pytest.mark.timeout(1800)]

FLEET = "conversation_labels_fleet_backfill"
BACKFILL = "conversation_labels_backfill"
RUN_TIMEOUT = 1200  # seconds: a 2-core machine shared with other test runs is slow
ORACLE = (
    "import psycopg\n"
    "from tests.helpers import oracle_mismatches\n"
    "ch = stack.clickhouse_client()\n"
    "with psycopg.connect(stack.start_postgres()) as pg:\n"
    "    print(json.dumps(oracle_mismatches(pg, ch, *args)))\n"
)


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _instances(s: Scheduled, dag_id: str, run_id: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for ti in s.api.task_instances(dag_id, run_id):
        out.setdefault(ti["task_id"], []).append(ti)
    return out


def _write_window(tis: dict[str, list[dict]]) -> tuple[dt.datetime, dt.datetime]:
    """[delete_range start, last label_day end]: the span in which the run deletes and rewrites."""
    (delete,) = tis["delete_range"]
    return _when(delete["start_date"]), max(_when(day["end_date"]) for day in tis["label_day"])


def _claim_log(s: Scheduled, run_id: str) -> str:
    logs = Path(s.airflow.env["AIRFLOW_HOME"]) / "logs" / f"dag_id={BACKFILL}" / f"run_id={run_id}"
    return "".join(p.read_text(errors="replace") for p in logs.glob("task_id=claim_customer/**/*.log"))


def test_fleet_repairs_the_drifted_customers_retries_a_failed_day_and_never_deletes_a_refused_one(
    scheduled: Scheduled,
):
    s = scheduled
    repairs = [
        {
            "customer": "alaska-air",
            "start_date": "2026-02-02",
            "end_date": "2026-02-04",
        },  # FAULT_DAY fails once
        {"customer": "horizon-air", "start_date": "2026-02-04", "end_date": "2026-02-06"},
        {"customer": REFUSED_CUSTOMER, "start_date": "2026-02-04", "end_date": "2026-02-06"},
    ]
    run_id = s.api.trigger(FLEET, {"repairs": repairs, "dry_run": False})
    state = s.api.wait(FLEET, run_id, RUN_TIMEOUT)
    report = json.loads((s.airflow.report_dir / FLEET / f"{safe_name(run_id)}.json").read_text())
    verdicts = {v["customer"]: v for v in report["customers"]}

    assert {c: v["verdict"] for c, v in verdicts.items()} == {
        "alaska-air": "EXACT",
        "horizon-air": "EXACT",
        REFUSED_CUSTOMER: "REFUSED",
    }, report
    assert state == "failed" and report["verdict"] != "EXACT"  # green only when every customer is EXACT
    assert REFUSED_DAY in verdicts[REFUSED_CUSTOMER]["why"] and verdicts[REFUSED_CUSTOMER]["run_id"] is None
    children = {r["conf"]["customer"]: r for r in s.api.runs(BACKFILL) if r["dag_run_id"].endswith(run_id)}
    assert sorted(children) == ["alaska-air", "horizon-air"]  # the refused customer got no backfill run
    assert all(r["state"] == "success" for r in children.values())
    alaska_days = {
        ti["rendered_map_index"]: ti
        for ti in _instances(s, BACKFILL, children["alaska-air"]["dag_run_id"])["label_day"]
    }
    assert alaska_days[FAULT_DAY]["try_number"] == 2 and alaska_days[FAULT_DAY]["state"] == "success"
    assert {d: ti["try_number"] for d, ti in alaska_days.items() if d != FAULT_DAY} == {
        "2026-02-02": 1,
        "2026-02-04": 1,
    }

    # independent of the package's comparison; the fleet ended, so no task of the instance holds chdb
    for repair in repairs[:2]:
        database = {"alaska-air": "alaska_air_us_east_1", "horizon-air": "horizon_air_us_west_2"}
        args = (repair["customer"], database[repair["customer"]], repair["start_date"], repair["end_date"])
        assert run_on_stack(s.airflow, ORACLE, *args) == [], repair
    assert table_digest(s.airflow, "sun_country_us_east_1") == s.refused_table_before


def test_two_runs_of_one_customer_never_interleave_while_another_customer_proceeds(scheduled: Scheduled):
    s = scheduled
    span = {"start_date": "2026-02-08", "end_date": "2026-02-10", "dry_run": False}
    stamp = dt.datetime.now(dt.UTC).strftime("%H%M%S")
    runs = {
        f"lease_a_{stamp}": "horizon-air",
        f"lease_b_{stamp}": "horizon-air",
        f"other_{stamp}": "alaska-air",
    }
    for run_id, customer in runs.items():
        s.api.trigger(BACKFILL, {"customer": customer, **span}, run_id=run_id)
    states = {run_id: s.api.wait(BACKFILL, run_id, RUN_TIMEOUT) for run_id in runs}
    assert set(states.values()) == {"success"}, states  # the second waited for the first, then repaired too

    tis = {run_id: _instances(s, BACKFILL, run_id) for run_id in runs}
    windows = {run_id: _write_window(tis[run_id]) for run_id in runs}
    first, second = sorted((r for r in runs if runs[r] == "horizon-air"), key=lambda r: windows[r][0])
    other = next(r for r in runs if runs[r] == "alaska-air")
    assert windows[first][1] <= windows[second][0], (
        f"{first} rewrote until {windows[first][1]}, {second} deleted from {windows[second][0]}: interleaved"
    )
    (released,) = tis[first]["release_customer"]
    (claimed,) = tis[second]["claim_customer"]
    assert _when(released["end_date"]) <= _when(claimed["end_date"])  # claimed only once released
    assert f"is being repaired by run {first!r}" in _claim_log(s, second)  # it waited, naming the holder
    assert windows[other][0] < windows[second][0]  # another customer is not held up by this one's lease
