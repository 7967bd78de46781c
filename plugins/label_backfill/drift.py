"""The nightly drift check's logic: which days and customers, per-customer results, repairs, report, alert.

Green means checked and equal: every customer the run should have compared ends with exactly one result, and
any result other than ``clean`` or ``no_data`` (see :func:`fails_run`) fails the run, named in the report and
the alert. A run that could not list anyone to check says so (``not_checked_reason``) and fails too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any

from label_backfill.compare.report import DAY_COLUMNS, markdown_table
from label_backfill.naming import (
    REGION_RE,
    DayRange,
    InvalidInput,
    contiguous_ranges,
    database_name,
    validate_customer_id,
)
from label_backfill.params import (
    DRIFT_DEFAULTS,
    DRIFT_SAMPLE_SIZE,
    LOOKBACK_DAYS,
    MAX_REPAIR_DAYS,
    with_defaults,
)
from label_backfill.settings import BACKFILL_DAG_ID, DRIFT_DAG_ID, FLEET_DAG_ID
from label_backfill.sides import Sides

log = logging.getLogger(__name__)


class Status(StrEnum):
    """Every way one customer's check can end (the report's ``customers[].status``)."""

    CLEAN = "clean"  # compared, every day equal, rows on at least one side
    DRIFT = "drift"  # compared, some day differs
    NO_DATA = "no_data"  # compared, zero rows on both sides over the whole window
    NO_PROFILE = "no_profile"  # requested, but Postgres has no profile for it
    NO_DATABASE = "missing_database"  # no ClickHouse table for the profile
    INVALID = "invalid"  # a customer id or a profile region that fails validation
    ERROR = "error"  # the comparison raised (unreachable database, a day left out, ...)
    NOT_CHECKED = "not_checked"  # listed, but its task left no result (failed, crashed, timed out)


# The names the DAG and older callers use.
STATUS_CLEAN, STATUS_DRIFT, STATUS_NO_DATA = Status.CLEAN, Status.DRIFT, Status.NO_DATA
STATUS_NO_PROFILE, STATUS_NO_DATABASE, STATUS_ERROR = Status.NO_PROFILE, Status.NO_DATABASE, Status.ERROR
STATUS_INVALID, STATUS_NOT_CHECKED = Status.INVALID, Status.NOT_CHECKED

COMPARED = frozenset({Status.CLEAN, Status.DRIFT, Status.NO_DATA})  # both sides were actually read


def fails_run(status: str) -> bool:
    """Whether one customer's status alone fails the run: anything but equal (``clean``) or empty on both
    sides (``no_data``, an inactive customer). Unknown statuses fail. (Every customer ``no_data`` fails the
    run as a whole: see :func:`problems`.)"""
    return status not in (Status.CLEAN, Status.NO_DATA)


def one_line(err: BaseException | str) -> str:
    """An error as one report line: ``Type: message`` with whitespace (libpq's newlines) collapsed."""
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    return " ".join(text.split())


def lookback(anchor: dt.date, lookback_days: int) -> DayRange:
    """The ``lookback_days`` full UTC days ending the day before ``anchor`` (the run's logical date)."""
    if not LOOKBACK_DAYS.low <= lookback_days <= LOOKBACK_DAYS.high:
        raise InvalidInput(
            f"lookback_days: {lookback_days!r} must be from {LOOKBACK_DAYS.low} to {LOOKBACK_DAYS.high}"
        )
    return DayRange(anchor - dt.timedelta(days=lookback_days), anchor - dt.timedelta(days=1))


def check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's params with defaults for nulls, every value checked (``InvalidInput`` naming the param): the
    form carries no bounds (it would clamp to them, see ``params``), so a value out of range is refused here,
    by ``check_window``, before anything reads a database."""
    out = with_defaults(params, DRIFT_DEFAULTS)
    customers = out["customers"]
    if not isinstance(customers, list) or not all(isinstance(c, str) for c in customers):
        raise InvalidInput(f"customers: {customers!r} must be a list of customer ids")
    LOOKBACK_DAYS.check("lookback_days", out["lookback_days"])
    if not isinstance(out["auto_repair"], bool):
        raise InvalidInput(f"auto_repair: {out['auto_repair']!r} must be true or false")
    MAX_REPAIR_DAYS.check("max_repair_days", out["max_repair_days"])
    DRIFT_SAMPLE_SIZE.check("sample_size", out["sample_size"])
    return out


def select_customers(requested: Iterable[str] | None, profiles: list[tuple[str, str]]) -> list[str]:
    """The requested customers, or every profile when none is requested: sorted, without duplicates, and NOT
    validated here (one bad entry must not stop the others): each ``check_customer`` validates its own."""
    if requested:
        return sorted({str(c) for c in requested})
    return sorted({str(c) for c, _ in profiles})


def customer_result(
    customer: str, status: str, comparison: dict[str, Any] | None = None, error: str = ""
) -> dict[str, Any]:
    return {"customer": customer, "status": str(status), "error": error, "comparison": comparison}


def check_customer(
    customer: str,
    days: DayRange,
    *,
    source: str,
    postgres_side: Callable[[], AbstractContextManager[Any]],
    clickhouse_side: Callable[[str], Any],
    compare: Callable[..., Any],
    sample_size: int,
) -> dict[str, Any]:
    """Check one customer; every outcome, failures included, is a result (never an exception that would
    leave the customer out of the report).

    :param source: where the id came from, for the message of an invalid one (``customers`` or ``profiles``).
    :param postgres_side: opens the Postgres side (a context manager).
    :param clickhouse_side: the ClickHouse side of a database name.
    :param compare: ``label_backfill.compare.compare``.
    """
    try:
        validate_customer_id(customer, source)
    except InvalidInput as err:
        return customer_result(customer, Status.INVALID, error=one_line(str(err)))
    try:
        with postgres_side() as postgres:
            region = postgres.region(customer)
            if region is None:
                return customer_result(customer, Status.NO_PROFILE, error="no profile in Postgres")
            if not isinstance(region, str) or not REGION_RE.fullmatch(region):
                return customer_result(
                    customer,
                    Status.INVALID,
                    error=f"region: {region!r} in its Postgres profile is not a region "
                    "(lowercase letters, digits and '-')",
                )
            clickhouse = clickhouse_side(database_name(customer, region))
            if not clickhouse.table.exists():
                return customer_result(
                    customer, Status.NO_DATABASE, error=f"no table {clickhouse.table.read_name}"
                )
            comparison = compare(postgres, clickhouse, customer, days, sample_size=sample_size)
            return classify(customer, comparison.to_dict(), days)
    except InvalidInput as err:
        return customer_result(customer, Status.INVALID, error=one_line(str(err)))
    except Exception as err:  # an unreachable database is this customer's result, not a crash of the others
        return customer_result(customer, Status.ERROR, error=one_line(err))


def check(customer: str, first: str, last: str, params: Mapping[str, Any], sides: Sides) -> dict[str, Any]:
    """The ``check_customer`` task: one customer over the window ``check_window`` handed over (ISO days),
    with the run's params, both sides reached through the providers' hooks (``sides``)."""
    from label_backfill import compare  # looked up per call: a test replaces ``compare.compare``

    params = with_defaults(params, DRIFT_DEFAULTS)
    result = check_customer(
        customer,
        DayRange(dt.date.fromisoformat(first), dt.date.fromisoformat(last)),
        source="customers" if params["customers"] else "profiles",
        postgres_side=sides.postgres,
        clickhouse_side=sides.clickhouse,
        compare=compare.compare,
        sample_size=params["sample_size"],
    )
    log.info("%s: %s %s", customer, result["status"], result["error"])
    return result


def classify(customer: str, comparison: dict[str, Any], days: DayRange) -> dict[str, Any]:
    """A finished comparison's status: ``error`` if a day of the window is absent from it, else ``drift``,
    ``no_data`` (zero rows on both sides over the whole window) or ``clean``."""
    compared = {d["date"] for d in comparison.get("days", [])}
    left_out = [d for d in days.days if d.isoformat() not in compared]
    if left_out:
        ranges = ", ".join(str(r) for r in contiguous_ranges(left_out))
        return customer_result(customer, Status.ERROR, comparison, error=f"days not compared: {ranges}")
    if comparison.get("drifted_days"):
        return customer_result(customer, Status.DRIFT, comparison)
    totals = comparison.get("totals", {})
    if not totals.get("pg_eligible") and not totals.get("ch_rows"):
        return customer_result(
            customer, Status.NO_DATA, comparison, error=f"0 rows on both sides over {days}"
        )
    return customer_result(customer, Status.CLEAN, comparison)


def reconcile(listed: list[str], results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The results, plus a ``not_checked`` result for each listed customer without one.

    A mapped ``check_customer`` that failed outside its own error handling (killed, timed out) pushes no
    result, and Airflow hands the downstream only the results that exist (no placeholder), so the missing
    ones are found by name. ``listed[i]`` is map index ``i``.
    """
    out = list(results)
    got = {r["customer"] for r in out}
    for index, customer in enumerate(listed):
        if customer not in got:
            out.append(
                customer_result(
                    customer,
                    Status.NOT_CHECKED,
                    error=f"check_customer [{index}] left no result (failed, crashed or timed out; see its log)",
                )
            )
    return out


def not_checked_reason(
    window: DayRange | None, window_reason: str | None, listed: list[str] | None, listing_reason: str | None
) -> str:
    """Why nobody was checked, or "" when there was someone to check."""
    if window is None:
        return window_reason or "check_window computed no window (see its log)"
    if listed is None:
        return listing_reason or "customers_to_check listed no customer (see its log)"
    if not listed:
        return "the list of customers to check was empty"
    return ""


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
        if result["status"] != Status.DRIFT:
            continue
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


def fleet_handover(repairs: list[dict[str, Any]], night: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The night's repairs as ONE fleet run (``conversation_labels_fleet_backfill``): its
    ``TriggerDagRunOperator`` kwargs (a deterministic run id: a rerun of the night triggers nothing twice),
    and the repairs with the backfill run id the fleet will give each (for the report)."""
    from label_backfill import fleet

    run_id = re.sub(r"[^A-Za-z0-9_.~:+-]", "_", f"drift_repair__{night}")[:250]
    ranges = [r["conf"] for r in repairs]
    kwargs = {"trigger_run_id": run_id, "conf": {"repairs": ranges, "dry_run": False}}
    return kwargs, [{"trigger_run_id": fleet.child_run_id(run_id, c), "conf": c} for c in ranges]


def problems(results: list[dict[str, Any]], days: DayRange | None = None, not_checked: str = "") -> list[str]:
    """One line per customer that drifted or could not be checked, one when every checked customer has no
    data, or a single line when nobody was checked (empty on a good night: the run is green)."""
    if not_checked:
        return [f"no customer was checked: {not_checked}"]
    out = []
    for r in results:
        if r["status"] == Status.DRIFT:
            drifted = ", ".join(str(d) for d in contiguous_ranges(drifted_days(r)))
            out.append(f"{r['customer']}: drift on {drifted}")
        elif fails_run(r["status"]):
            out.append(f"{r['customer']}: {r['status']} ({r['error']})")
    compared = [r for r in results if r["status"] in COMPARED]
    if compared and all(r["status"] == Status.NO_DATA for r in compared):
        n = len(compared)
        out.append(
            f"every checked customer has no data on either side over {days or 'the window'} "
            f"({n} customer{'s' if n != 1 else ''}): a dead source or a wrong window?"
        )
    if not results:
        out.append("no customer was checked: no result")
    return out


_RANK = {Status.DRIFT: 0, Status.NO_DATA: 2, Status.CLEAN: 3}  # any status that is not compared: 1


def _order(result: dict[str, Any]) -> tuple[int, str]:
    return _RANK.get(result["status"], 1), result["customer"]


def report_document(
    results: list[dict[str, Any]],
    days: DayRange | None,
    run_id: str,
    repairs: list[dict[str, Any]],
    repair_note: str,
    not_checked: str = "",
) -> dict[str, Any]:
    """The JSON report. ``not_checked``: why nobody was checked (then ``results`` is empty)."""
    found = problems(results, days, not_checked)
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "dag_id": DRIFT_DAG_ID,
        "run_id": run_id,
        "start_date": days.first.isoformat() if days else None,
        "end_date": days.last.isoformat() if days else None,
        "ok": not found,
        "problems": found,
        "not_checked_reason": not_checked,
        "statuses": dict(sorted(statuses.items())),
        "no_data": sorted(r["customer"] for r in results if r["status"] == Status.NO_DATA),
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
        "repairs": {
            "note": repair_note,
            "triggered": repairs,
            "backfill_dag_id": BACKFILL_DAG_ID,
            "fleet_dag_id": FLEET_DAG_ID,
        },
    }


def _verdict(document: dict[str, Any]) -> str:
    if document["ok"]:
        return "clean"
    if document["not_checked_reason"]:
        return "NOT CHECKED"
    statuses = {c["status"] for c in document["customers"]}
    if statuses - COMPARED:
        return "INCOMPLETE" + (", DRIFT" if Status.DRIFT in statuses else "")
    return "DRIFT" if Status.DRIFT in statuses else "NO DATA"


def render_markdown(document: dict[str, Any]) -> str:
    window = f"{document['start_date']}..{document['end_date']}" if document["start_date"] else "(no window)"
    lines = [
        f"# Label drift {window}: {_verdict(document)}",
        "",
        f"- run: `{document['run_id']}`",
    ]
    no_data = document.get("no_data", [])
    if document["problems"]:
        lines += [f"- **{p}**" for p in document["problems"]]
    else:
        lines.append(f"- every customer {'with data ' if no_data else ''}matches Postgres")
    if no_data:
        lines.append(
            f"- no data (0 rows on both sides over the window, not counted as clean): {', '.join(no_data)}"
        )
    summary = []
    for c in document["customers"]:
        t = c["totals"]
        bad = sum(1 for d in c["days"] if not d["ok"])
        summary.append(
            [
                c["customer"].replace("|", "\\|"),
                c["status"],
                str(bad),
                *(
                    f"{t.get(k, 0):,}"
                    for k in ("pg_eligible", "ch_rows", "duplicates", "missing", "extra", "stale")
                ),
            ]
        )
    columns = ["customer", "status", "drifted days", "pg_eligible", "ch_rows", "duplicates", "missing"]
    if summary:  # nobody checked: the problem line above says why
        lines += ["", markdown_table([*columns, "extra", "stale"], summary)]
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
