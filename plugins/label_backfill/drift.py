"""The nightly drift check's logic: which days and customers, per-customer results, repairs, report, alert."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from label_backfill.compare.report import DAY_COLUMNS, markdown_table
from label_backfill.naming import DayRange, InvalidInput, contiguous_ranges, validate_customer_id
from label_backfill.settings import BACKFILL_DAG_ID, DRIFT_DAG_ID

STATUS_CLEAN, STATUS_DRIFT = "clean", "drift"
STATUS_NO_PROFILE, STATUS_NO_DATABASE, STATUS_ERROR = "no_profile", "missing_database", "error"


def lookback(anchor: dt.date, lookback_days: int) -> DayRange:
    """The ``lookback_days`` full UTC days ending the day before ``anchor`` (the run's logical date)."""
    if not 1 <= lookback_days <= 90:
        raise InvalidInput(f"lookback_days: {lookback_days!r} must be from 1 to 90")
    return DayRange(anchor - dt.timedelta(days=lookback_days), anchor - dt.timedelta(days=1))


def select_customers(requested: list[str] | None, profiles: list[tuple[str, str]]) -> list[str]:
    """The requested customers (validated), or every profile when none is requested."""
    if not requested:
        return sorted(c for c, _ in profiles)
    return sorted({validate_customer_id(c, "customers") for c in requested})


def customer_result(
    customer: str, status: str, comparison: dict[str, Any] | None = None, error: str = ""
) -> dict[str, Any]:
    return {"customer": customer, "status": status, "error": error, "comparison": comparison}


def drifted_days(result: dict[str, Any]) -> list[dt.date]:
    comparison = result.get("comparison") or {}
    return [dt.date.fromisoformat(d) for d in comparison.get("drifted_days", [])]


def plan_repairs(results: list[dict[str, Any]], max_repair_days: int, night: str) -> list[dict[str, Any]]:
    """One backfill per contiguous drifted range, oldest first, at most ``max_repair_days`` days a customer.

    Returns ``TriggerDagRunOperator`` kwargs with deterministic run ids, so a rerun of the same night
    triggers nothing twice.
    """
    repairs = []
    for result in results:
        budget = max_repair_days
        for days in contiguous_ranges(drifted_days(result)):
            if budget <= 0:
                break
            days = DayRange(days.first, min(days.last, days.first + dt.timedelta(days=budget - 1)))
            budget -= len(days)
            run_id = f"drift_repair__{result['customer']}__{days.first}__{days.last}__{night}"
            repairs.append(
                {
                    "trigger_run_id": re.sub(r"[^A-Za-z0-9_.~:+-]", "_", run_id),
                    "conf": {
                        "customer": result["customer"],
                        "start_date": days.first.isoformat(),
                        "end_date": days.last.isoformat(),
                    },
                }
            )
    return repairs


def problems(results: list[dict[str, Any]]) -> list[str]:
    """One line per customer that drifted or could not be checked (empty on a clean night)."""
    out = []
    for r in results:
        if r["status"] == STATUS_DRIFT:
            days = ", ".join(str(d) for d in contiguous_ranges(drifted_days(r)))
            out.append(f"{r['customer']}: drift on {days}")
        elif r["status"] != STATUS_CLEAN:
            out.append(f"{r['customer']}: {r['status']} ({r['error']})")
    return out


def _order(result: dict[str, Any]) -> tuple[int, str]:
    rank = {STATUS_DRIFT: 0, STATUS_ERROR: 1, STATUS_NO_DATABASE: 1, STATUS_NO_PROFILE: 1, STATUS_CLEAN: 2}
    return rank.get(result["status"], 1), result["customer"]


def report_document(
    results: list[dict[str, Any]],
    days: DayRange,
    run_id: str,
    repairs: list[dict[str, Any]],
    repair_note: str,
) -> dict[str, Any]:
    return {
        "dag_id": DRIFT_DAG_ID,
        "run_id": run_id,
        "start_date": days.first.isoformat(),
        "end_date": days.last.isoformat(),
        "ok": not problems(results),
        "problems": problems(results),
        "customers": [
            {
                "customer": r["customer"],
                "status": r["status"],
                "error": r["error"],
                "days": (r["comparison"] or {}).get("days", []),
                "totals": (r["comparison"] or {}).get("totals", {}),
            }
            for r in sorted(results, key=_order)
        ],
        "repairs": {"note": repair_note, "triggered": repairs, "backfill_dag_id": BACKFILL_DAG_ID},
    }


def render_markdown(document: dict[str, Any]) -> str:
    lines = [
        f"# Label drift {document['start_date']}..{document['end_date']}: "
        f"{'clean' if document['ok'] else 'DRIFT'}",
        "",
        f"- run: `{document['run_id']}`",
    ]
    lines += [f"- **{p}**" for p in document["problems"]] or ["- every customer matches Postgres"]
    summary = []
    for c in document["customers"]:
        t = c["totals"]
        bad = sum(1 for d in c["days"] if not d["ok"])
        summary.append(
            [
                c["customer"],
                c["status"],
                str(bad),
                *(
                    f"{t.get(k, 0):,}"
                    for k in ("pg_eligible", "ch_rows", "duplicates", "missing", "extra", "stale")
                ),
            ]
        )
    lines += [
        "",
        markdown_table(
            [
                "customer",
                "status",
                "drifted days",
                "pg_eligible",
                "ch_rows",
                "duplicates",
                "missing",
                "extra",
                "stale",
            ],
            summary,
        ),
    ]
    for c in document["customers"]:
        drifted = [d for d in c["days"] if not d["ok"]]
        if not drifted:
            continue
        lines += ["", f"## {c['customer']}", ""]
        lines.append(
            markdown_table(
                ["day", *DAY_COLUMNS],
                [
                    [
                        d["date"],
                        *(f"{d[k]:,}" for k in DAY_COLUMNS),
                    ]
                    for d in drifted
                ],
            )
        )
        samples = [(d["date"], s) for d in drifted for s in d["sample"]][:10]
        if samples:
            lines += ["", "| day | conversation | kind | postgres | clickhouse |", "|---|---|---|---|---|"]
            for day, s in samples:
                pg = s.get("postgres") or {}
                pg_text = f"{pg.get('agent_user_id')}/{pg.get('usecase_id')}" if pg else "-"
                if pg and not pg.get("eligible", True):
                    pg_text += " (not eligible)"
                ch_text = (
                    "; ".join(f"{r['agent_user_id']}/{r['usecase_id']}" for r in s.get("clickhouse", []))
                    or "-"
                )
                lines.append(
                    f"| {day} | {s['conversation_id']} | {','.join(s['kinds'])} | {pg_text} | {ch_text} |"
                )
    repairs = document["repairs"]
    lines += ["", "## Repairs", "", f"{repairs['note']}"]
    lines += [
        f"- `{r['trigger_run_id']}`: {r['conf']['customer']} {r['conf']['start_date']}..{r['conf']['end_date']}"
        for r in repairs["triggered"]
    ]
    return "\n".join(lines)
