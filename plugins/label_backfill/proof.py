"""What a run shows where people look, without opening a log: one-line labels and asset-event extras.

Airflow 3 renders a task's ``map_index_template`` after the task ran, with the context the task filled in;
the result (``rendered_map_index``) is the task's name in the run's task list (column "Map Index", also for
a task that is not mapped) and in a mapped task's list of instances. The DAG files set these templates and
fill the context with the labels built here:

- backfill ``preflight``: ``BEFORE ...`` (the drift about to be repaired), ``DRY RUN ...`` or ``REFUSED ...``;
- backfill ``approve_delete``: who approved or rejected, or ``not asked``;
- backfill ``verify``: the verdict and the before -> after table (``EXACT · rows 7,612→7,480 · ...``);
- drift ``check_customer``: ``alaska-air · DRIFT 2026-02-03..2026-02-04 (...)`` or ``horizon-air · clean``;
- drift ``report``: the night's summary, drifted customers with their day ranges first.

A label holds at most ``LABEL_MAX`` characters (the metadata column is ``String(250)``); the report keeps
everything. The asset events' ``extra`` (``backfill_event_extra``, ``drift_event_extra``) carry the same
facts as JSON, on the run's "Asset Events" tab and for any DAG scheduled on those assets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from label_backfill.compare.report import Comparison

LABEL_MAX = 250  # TaskInstance.rendered_map_index is String(250)
SEP = " · "
# the before -> after table: (label, Comparison column)
TABLE = (
    ("rows", "ch_rows"),
    ("distinct", "ch_distinct"),
    ("duplicates", "duplicates"),
    ("stale", "stale"),
    ("missing", "missing"),
    ("extra", "extra"),
)


def label(*parts: str | None) -> str:
    """The non-empty parts joined with `` · ``, cut to ``LABEL_MAX`` characters (ending with ``…``)."""
    text = SEP.join(" ".join(str(p).split()) for p in parts if p)
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def totals(comparison: Comparison) -> dict[str, int]:
    """ClickHouse's side of the table: rows, distinct, duplicates, stale, missing, extra."""
    return {name: comparison.total(column) for name, column in TABLE}


def table_line(before: Comparison, after: Comparison | None = None) -> str:
    """``rows 7,612→7,480 · distinct ... · extra 55→0 · Postgres 7,480`` (one side only without ``after``)."""
    if after is None:
        parts = [f"{name} {before.total(column):,}" for name, column in TABLE]
        return SEP.join([*parts, f"Postgres {before.total('pg_eligible'):,}"])
    parts = [f"{name} {before.total(column):,}→{after.total(column):,}" for name, column in TABLE]
    return SEP.join([*parts, f"Postgres {after.total('pg_eligible'):,}"])


def duration_text(seconds: int | None) -> str:
    if not seconds:
        return "the time allowed"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def approval_decision(
    *,
    asked: bool,
    approved: bool = True,
    by: str | None = None,
    at: dt.datetime | str | None = None,
    timed_out: bool = False,
    timeout_seconds: int | None = None,
) -> dict[str, Any]:
    """What ``approve_delete`` decided (its XCom ``decision``, the report's ``approval``).

    :param asked: False when the run's ``require_approval`` was off (then it is approved without asking).
    :param by: the responding user's name (None when nobody answered: the timeout's default, Reject).
    """
    if isinstance(at, dt.datetime):
        at = at.astimezone(dt.UTC).isoformat(timespec="seconds")
    return {
        "asked": asked,
        "approved": bool(approved) or not asked,
        "by": by,
        "at": at,
        "timed_out": timed_out,
        "timeout_seconds": timeout_seconds,
    }


def decision_text(decision: Mapping[str, Any] | None) -> str:
    """``approved by admin at 2026-11-28 05:40 UTC``, ``rejected by ...``, ``not answered within 24 h: rejected
    by default`` or ``not asked (require_approval is off)``."""
    if not decision:
        return "no decision recorded"
    if not decision.get("asked"):
        return "not asked (require_approval is off)"
    if decision.get("timed_out"):
        return f"not answered within {duration_text(decision.get('timeout_seconds'))}: rejected by default"
    verb = "approved" if decision.get("approved") else "rejected"
    at = decision.get("at")
    when = f" at {at[:16].replace('T', ' ')} UTC" if at else ""
    return f"{verb} by {decision.get('by') or 'an unnamed user'}{when}"


def decision_label(decision: Mapping[str, Any] | None) -> str:
    """``approve_delete``'s label: ``APPROVED by ann at ...``, ``REJECTED by bob at ...``, ``REJECTED: not
    answered within 24 h`` or ``not asked (require_approval is off)``."""
    text = decision_text(decision)
    if not decision or not decision.get("asked"):
        return text
    if decision.get("timed_out"):
        return f"REJECTED: {text.split(':')[0]}"
    verb, _, rest = text.partition(" ")
    return f"{verb.upper()} {rest}"


def backfill_event_extra(
    *,
    customer: str,
    database: str,
    start_date: str,
    end_date: str,
    verdict: str,
    before: Comparison | None,
    after: Comparison | None,
    report: str,
    run_id: str,
    approval: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The asset event's ``extra`` for a backfill: customer, days, verdict, and the before -> after counts."""
    days = (after or before).days if (after or before) else []
    return {
        "customer": customer,
        "database": database,
        "start_date": start_date,
        "end_date": end_date,
        "days": len(days),
        "verdict": verdict,
        "ok": verdict == "EXACT",
        "before": totals(before) if before else None,
        "after": totals(after) if after else None,
        "postgres": (after or before).total("pg_eligible") if (after or before) else None,
        "summary": table_line(before, after) if before else None,  # the same, as one line for people
        "approval": decision_text(approval) if approval else None,
        "report": report,
        "run_id": run_id,
    }


def _ranges(days: Iterable[str]) -> str:
    from label_backfill.naming import contiguous_ranges

    ranges = contiguous_ranges(sorted(dt.date.fromisoformat(d) for d in days))
    return ", ".join(str(r.first) if r.first == r.last else f"{r.first}..{r.last}" for r in ranges)


def customer_label(result: Mapping[str, Any]) -> str:
    """A drift check's customer as its mapped task is named: ``alaska-air · DRIFT 2026-02-03..2026-02-04
    (stale 120, duplicates 82)``, ``horizon-air · clean``, ``x · NO DATA``, ``y · ERROR: <why>``."""
    customer, status = result["customer"], str(result["status"])
    comparison = result.get("comparison") or {}
    if status == "clean":
        return label(customer, "clean")
    if status == "drift":
        t = comparison.get("totals", {})
        kinds = ", ".join(
            f"{kind} {t[kind]:,}"
            for kind in ("stale", "duplicates", "missing", "extra", "inconsistent")
            if t.get(kind)
        )
        return label(
            customer,
            f"DRIFT {_ranges(comparison.get('drifted_days', []))}" + (f" ({kinds})" if kinds else ""),
        )
    if status == "no_data":
        return label(customer, "no data")
    return label(customer, f"{status.upper().replace('_', ' ')}: {result.get('error') or ''}".rstrip(": "))


def drifted(document: Mapping[str, Any]) -> dict[str, str]:
    """Drifted customers of a drift report -> their drifted day ranges (``2026-02-03..2026-02-04, ...``)."""
    return {
        c["customer"]: _ranges(d["date"] for d in c["days"] if not d["ok"])
        for c in document["customers"]
        if c["status"] == "drift"
    }


def drift_summary(document: Mapping[str, Any]) -> str:
    """The drift check's run in one line: ``DRIFT · alaska-air 2026-02-03..2026-02-04; sun-country ... ·
    clean 1 · no data 0``; failing statuses next, with their customers; ``clean · 3 customers equal``."""
    if document.get("not_checked_reason"):
        return label("NOT CHECKED", document["not_checked_reason"])
    statuses: dict[str, list[str]] = {}
    for c in document["customers"]:
        statuses.setdefault(c["status"], []).append(c["customer"])
    found = drifted(document)
    others = {s: names for s, names in statuses.items() if s not in ("drift", "clean", "no_data")}
    parts: list[str] = []
    if found:
        parts.append("DRIFT " + "; ".join(f"{c} {days}" for c, days in found.items()))
    parts += [f"{s.upper().replace('_', ' ')} {', '.join(names)}" for s, names in sorted(others.items())]
    if not parts and document.get("ok"):
        parts.append(f"clean: {len(statuses.get('clean', []))} customer(s) equal")
    elif not parts:  # every customer without data: not clean (the report's problem says why)
        return label(f"NO DATA: {len(statuses.get('no_data', []))} customer(s), 0 rows on both sides")
    if (found or others) and statuses.get("clean"):
        parts.append(f"clean {len(statuses['clean'])}")
    if statuses.get("no_data"):
        parts.append(f"no data {len(statuses['no_data'])}")
    return label(*parts)


def drift_event_extra(document: Mapping[str, Any], report: str) -> dict[str, Any]:
    """The drift check's asset event ``extra``: the window, each drifted customer with its day ranges, the
    customers per status, the repairs triggered and the report's path."""
    return {
        "start_date": document["start_date"],
        "end_date": document["end_date"],
        "ok": document["ok"],
        "drifted": drifted(document),
        "statuses": {
            status: sorted(c["customer"] for c in document["customers"] if c["status"] == status)
            for status in sorted({c["status"] for c in document["customers"]})
        },
        "not_checked_reason": document.get("not_checked_reason") or None,
        "repairs": [r["trigger_run_id"] for r in document["repairs"]["triggered"]],
        "report": report,
        "run_id": document["run_id"],
    }
