"""The fleet: many customers repaired over a day range with one trigger (``conversation_labels_fleet_backfill``).

How the fleet is split, and why. A repair of 88 customers x 330 days as one run would hold ~29,000 mapped
day tasks, over Airflow's ``max_map_length`` (1024) and heavy for the scheduler and the UI. The fleet run
holds one *plan* task and one *repair* task per customer (at most ``MAX_FLEET_REPAIRS``); each repair
triggers one ordinary ``conversation_labels_backfill`` run for its customer (at most 366 days: 366 mapped
days plus a few tasks). So a run never holds more than ~1,000 task instances, a customer's repair is exactly
the single-customer repair people already know (its grid, its report, its "clear a failed day"), and the
customer lease (``label_backfill.leases``) keeps two runs of one customer apart, whoever triggered them.

Verdicts per customer: ``EXACT`` (repaired and proven, or found equal by the plan: nothing to repair),
``NOT EXACT``, ``REFUSED`` (the guard: nothing deleted) and ``FAILED`` (anything else: not checked, a child
run that failed before its verify, an invalid customer). The fleet is green only when every customer is
``EXACT``; a dry run is green when every customer was checked.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from typing import Any

from label_backfill import backfill
from label_backfill.compare.report import markdown_table
from label_backfill.naming import InvalidInput, parse_day
from label_backfill.params import (
    FLEET_CHILD_KEYS,
    FLEET_DEFAULTS,
    MAX_FLEET_REPAIRS,
    MAX_PARALLEL_CUSTOMERS,
    with_defaults,
)
from label_backfill.settings import BACKFILL_DAG_ID

# A customer's plan (the dry run's per-customer finding)
PLAN_REPAIR, PLAN_CLEAN, PLAN_REFUSED, PLAN_ERROR = "REPAIR", "CLEAN", "REFUSED", "NOT CHECKED"
# A customer's verdict after the fleet ran
EXACT, NOT_EXACT, REFUSED, FAILED, DRY_RUN = "EXACT", "NOT EXACT", "REFUSED", "FAILED", "DRY RUN"
VERDICT_ORDER = {FAILED: 0, NOT_EXACT: 1, REFUSED: 2, DRY_RUN: 3, EXACT: 4}


def _bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: {value!r} must be true or false")
    return value


def _ranges(params: Mapping[str, Any]) -> list[dict[str, str]] | None:
    """The conf's explicit ``repairs`` (customer, start_date, end_date each), or None when it has none."""
    repairs = params.get("repairs") or []
    if not isinstance(repairs, list):
        raise InvalidInput("repairs: must be a list of {customer, start_date, end_date}")
    out = []
    for i, item in enumerate(repairs):
        if not isinstance(item, Mapping) or set(item) != {"customer", "start_date", "end_date"}:
            raise InvalidInput(f"repairs[{i}]: {item!r} must be {{customer, start_date, end_date}} exactly")
        out.append({k: item[k] for k in ("customer", "start_date", "end_date")})
    return out or None


def validate(params: Mapping[str, Any], today: dt.date) -> dict[str, Any]:
    """Check the fleet's params before anything is read; raise ``InvalidInput`` naming what is wrong.

    Each customer-range is checked by the backfill's own ``validate_params`` with the conf its run will get,
    so the fleet refuses exactly what a single run would (a bad id, a range over ``max_days``, an unfinished
    end day...), before any run starts. ``all_customers`` is resolved later (it needs Postgres).

    :return: ``{"dry_run", "max_parallel_customers", "all_customers", "start_date", "end_date",
        "child_params", "repairs": [{customer, start_date, end_date}]}``.
    """
    params = with_defaults(params, FLEET_DEFAULTS)
    dry_run, everyone = _bool(params, "dry_run"), _bool(params, "all_customers")
    parallel = MAX_PARALLEL_CUSTOMERS.check("max_parallel_customers", params.get("max_parallel_customers"))
    customers = params.get("customers") or []
    if not isinstance(customers, list) or not all(isinstance(c, str) for c in customers):
        raise InvalidInput(f"customers: {customers!r} must be a list of customer ids")
    customers = [c.strip() for c in customers if c.strip()]
    explicit = _ranges(params)
    chosen = [
        name
        for name, given in (("customers", customers), ("all_customers", everyone), ("repairs", explicit))
        if given
    ]
    if len(chosen) != 1:
        raise InvalidInput(
            "say which customers, in exactly one way: customers (a list), all_customers=true (every profile: "
            f"never the default) or repairs (a list of ranges); got {', '.join(chosen) or 'none'}"
        )
    child_params = {k: params[k] for k in FLEET_CHILD_KEYS}
    first = last = None
    if explicit is None:
        first = parse_day(params.get("start_date"), "start_date").isoformat()
        last = parse_day(params.get("end_date"), "end_date").isoformat()
        if everyone:
            # the range and the guards are checked now, with a placeholder id: every profile gets this range
            backfill.validate_params(
                {**child_params, "customer": "x", "start_date": first, "end_date": last}, today
            )
        explicit = [{"customer": c, "start_date": first, "end_date": last} for c in customers]
    elif params.get("start_date") or params.get("end_date"):
        raise InvalidInput("start_date/end_date: not with repairs (each repair names its own range)")
    repairs = check_repairs(explicit, child_params, today)
    return {
        "dry_run": dry_run,
        "max_parallel_customers": parallel,
        "all_customers": everyone,
        "start_date": first,
        "end_date": last,
        "child_params": child_params,
        "repairs": repairs,
    }


def check_repairs(
    repairs: Iterable[Mapping[str, str]], child_params: Mapping[str, Any], today: dt.date
) -> list[dict[str, str]]:
    """Each repair as its backfill run would check it; no customer twice over overlapping days; at most
    ``MAX_FLEET_REPAIRS`` (one mapped task each). Sorted by customer, then first day."""
    out = []
    for repair in repairs:
        try:
            plan = backfill.validate_params({**child_params, **repair, "dry_run": False}, today)
        except InvalidInput as err:
            raise InvalidInput(f"{repair.get('customer')!r}: {err}") from None
        out.append({"customer": plan.customer, "start_date": plan.start_date, "end_date": plan.end_date})
    out.sort(key=lambda r: (r["customer"], r["start_date"]))
    for a, b in zip(out, out[1:], strict=False):
        if a["customer"] == b["customer"] and b["start_date"] <= a["end_date"]:
            raise InvalidInput(
                f"{a['customer']}: {a['start_date']}..{a['end_date']} and {b['start_date']}..{b['end_date']} "
                "overlap: one range per customer and day"
            )
    if len(out) > MAX_FLEET_REPAIRS:
        raise InvalidInput(
            f"{len(out)} customer ranges: at most {MAX_FLEET_REPAIRS} per fleet run (one task each, under "
            "Airflow's max_map_length); split the customers over two runs"
        )
    return out


def child_conf(repair: Mapping[str, str], child_params: Mapping[str, Any]) -> dict[str, Any]:
    """The ``conversation_labels_backfill`` conf of one repair: its range, the fleet's guards, never a dry
    run nor a person's approval (the fleet's dry run is the plan people approve)."""
    return {**child_params, **repair, "dry_run": False, "require_approval": False}


def child_run_id(fleet_run_id: str, repair: Mapping[str, str]) -> str:
    """Deterministic: a rerun of the fleet's repair finds (and adopts, or resets) the same backfill run."""
    raw = f"fleet__{repair['customer']}__{repair['start_date']}__{repair['end_date']}__{fleet_run_id}"
    return re.sub(r"[^A-Za-z0-9_.~:+-]", "_", raw)[:250]


def not_checked(repair: Mapping[str, str], error: str = "") -> dict[str, Any]:
    """A customer-range's plan before (or without) its check: ``NOT CHECKED``, nothing counted."""
    return {
        **repair,
        "status": PLAN_ERROR,
        "drifted_days": [],
        "days": 0,
        "delete_rows": 0,
        "rewrite_rows": 0,
        "outside": 0,
        "problems": [],
        "error": error,
    }


def plan_repair(
    repair: Mapping[str, str], child_params: Mapping[str, Any], sides: Any, today: dt.date
) -> dict[str, Any]:
    """One customer's dry run: the backfill's own preflight (comparison, range edge, guard), nothing written.

    Never raises: an unreachable database, a missing profile or table is this customer's ``NOT CHECKED``.
    """
    entry = not_checked(repair)
    try:
        plan = backfill.validate_params(child_conf(repair, child_params), today)
        entry["days"] = len(plan.days)
        with sides.postgres() as postgres:
            plan = backfill.resolve_customer(plan, postgres)
            clickhouse = sides.clickhouse(plan.database)
            if not clickhouse.table.exists():
                return {**entry, "error": f"ClickHouse has no table {clickhouse.table.read_name}"}
            found = backfill.run_preflight(plan, postgres, clickhouse, today)
    except InvalidInput as err:
        return {**entry, "error": str(err)}
    except Exception as err:  # this customer's finding, never a crash that hides the others
        return {**entry, "error": f"{type(err).__name__}: {err}".splitlines()[0][:300]}
    before, outside = found.before, len(found.boundary.delete_ids)
    drifted = [d.isoformat() for d in before.drifted_days]
    status = PLAN_REFUSED if found.problems else PLAN_REPAIR if drifted or outside else PLAN_CLEAN
    return {
        **entry,
        "status": status,
        "database": plan.database,
        "drifted_days": drifted,
        "delete_rows": before.total("ch_rows"),
        "rewrite_rows": before.total("pg_eligible"),
        "outside": outside,
        "problems": found.problems,
    }


def to_repair(plans: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The plans the fleet repairs: drifted and accepted by the guard (clean ones are already exact)."""
    return [p for p in plans if p["status"] == PLAN_REPAIR]


def totals(plans: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    plans = list(plans)
    repair = to_repair(plans)
    return {
        "customers": len({p["customer"] for p in plans}),
        "to_repair": len(repair),
        "refused": sum(p["status"] == PLAN_REFUSED for p in plans),
        "not_checked": sum(p["status"] == PLAN_ERROR for p in plans),
        "drifted_days": sum(len(p["drifted_days"]) for p in plans),
        "delete_rows": sum(p["delete_rows"] for p in repair),
        "rewrite_rows": sum(p["rewrite_rows"] for p in repair),
    }


def verdict(plan: Mapping[str, Any], dry_run: bool, child: Mapping[str, Any] | None) -> dict[str, Any]:
    """One customer-range's verdict from its plan and, when it was repaired, its backfill run.

    :param child: ``{"run_id", "state", "report"}`` of its backfill run (``report``: the run's JSON report or
        None); None when no run was triggered for it.
    """
    out = {
        "customer": plan["customer"],
        "start_date": plan["start_date"],
        "end_date": plan["end_date"],
        "plan": plan["status"],
        "run_id": None,
        "report": None,
        "why": "",
    }
    if plan["status"] == PLAN_ERROR:
        return {**out, "verdict": FAILED, "why": f"not checked: {plan['error']}"}
    if plan["status"] == PLAN_REFUSED:
        return {**out, "verdict": REFUSED, "why": " ".join(plan["problems"])}
    if plan["status"] == PLAN_CLEAN:
        return {**out, "verdict": EXACT, "why": "equal to Postgres at the plan: nothing to repair"}
    if dry_run:
        return {**out, "verdict": DRY_RUN, "why": f"would repair {len(plan['drifted_days'])} drifted day(s)"}
    if child is None:
        return {**out, "verdict": FAILED, "why": "its backfill run was never triggered"}
    report, state = child.get("report"), child.get("state")
    out = {**out, "run_id": child["run_id"], "report": child.get("report_url")}
    found = (report or {}).get("verdict")
    if state == "success" and found == backfill.VERDICT_EXACT:
        return {**out, "verdict": EXACT, "why": ""}
    if state in ("queued", "running"):
        return {**out, "verdict": FAILED, "why": f"its backfill run is still {state}: not verified yet"}
    why = (
        "; ".join((report or {}).get("problems") or []) or f"backfill run {state}, verdict {found or 'none'}"
    )
    if found == backfill.VERDICT_REFUSED:
        return {**out, "verdict": REFUSED, "why": why}
    if found == backfill.VERDICT_NOT_EXACT:
        return {**out, "verdict": NOT_EXACT, "why": why}
    return {**out, "verdict": FAILED, "why": why}


def document(
    run_id: str, validated: Mapping[str, Any], plans: list[dict[str, Any]], verdicts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The fleet report's JSON: the plan with totals, then one verdict per customer-range (worst first)."""
    verdicts = sorted(verdicts, key=lambda v: (VERDICT_ORDER[v["verdict"]], v["customer"], v["start_date"]))
    counts = {name: sum(v["verdict"] == name for v in verdicts) for name in VERDICT_ORDER}
    dry_run = bool(validated.get("dry_run"))
    if dry_run:
        ok = counts[FAILED] == 0
        overall = DRY_RUN if ok else FAILED
    else:
        ok = bool(verdicts) and counts[EXACT] == len(verdicts)
        overall = (
            EXACT if ok else min((v["verdict"] for v in verdicts), key=VERDICT_ORDER.get, default=FAILED)
        )
    return {
        "dag_id": "conversation_labels_fleet_backfill",
        "run_id": run_id,
        "dry_run": dry_run,
        "verdict": overall,
        "ok": ok,
        "counts": {k: v for k, v in counts.items() if v},
        "totals": totals(plans),
        "plans": sorted(plans, key=lambda p: (p["customer"], p["start_date"])),
        "customers": verdicts,
    }


def summary_line(doc: Mapping[str, Any]) -> str:
    """The fleet's outcome in one line (the task's label in the run's task list)."""
    counts = " · ".join(f"{name} {n}" for name, n in doc["counts"].items()) or "no customer"
    t = doc["totals"]
    would = (
        f"would delete {t['delete_rows']:,} rows and rewrite {t['rewrite_rows']:,}" if doc["dry_run"] else ""
    )
    return " · ".join(x for x in (doc["verdict"], counts, would) if x)


def plan_line(plans: Iterable[Mapping[str, Any]], dry_run: bool) -> str:
    """The plan in one line (``fleet_plan``'s label): what a dry run would do, or what the repair will do."""
    t = totals(plans)
    head = "DRY RUN" if dry_run else "PLAN"
    verb = "would delete" if dry_run else "deleting"
    parts = [
        f"{t['to_repair']} of {t['customers']} customer(s) to repair",
        f"{t['refused']} refused" if t["refused"] else "",
        f"{t['not_checked']} not checked" if t["not_checked"] else "",
        f"{verb} {t['delete_rows']:,} rows, rewriting {t['rewrite_rows']:,}",
    ]
    return " · ".join([head, *[p for p in parts if p]])


def render_markdown(doc: Mapping[str, Any]) -> str:
    t = doc["totals"]
    lines = [
        f"# Fleet {'plan (dry run)' if doc['dry_run'] else 'repair'}: {doc['verdict']}",
        "",
        f"Run `{doc['run_id']}`. {t['customers']} customer(s); {t['to_repair']} to repair, {t['refused']} refused "
        f"by the guard, {t['not_checked']} not checked; {t['drifted_days']} drifted day(s). Repairs delete "
        f"{t['delete_rows']:,} ClickHouse rows and rewrite {t['rewrite_rows']:,} from Postgres.",
        "",
        "## Plan",
        "",
        markdown_table(
            [
                "customer",
                "days",
                "plan",
                "drifted days",
                "delete rows",
                "rewrite rows",
                "outside range",
                "why",
            ],
            [
                [
                    p["customer"],
                    f"{p['start_date']}..{p['end_date']}",
                    p["status"],
                    str(len(p["drifted_days"])),
                    f"{p['delete_rows']:,}",
                    f"{p['rewrite_rows']:,}",
                    str(p["outside"]),
                    (" ".join(p["problems"]) or p["error"])[:300],
                ]
                for p in doc["plans"]
            ],
        ),
        "",
        "## Verdicts",
        "",
        markdown_table(
            ["customer", "days", "verdict", "backfill run", "report", "why"],
            [
                [
                    v["customer"],
                    f"{v['start_date']}..{v['end_date']}",
                    v["verdict"],
                    v["run_id"] or "",
                    v["report"] or "",
                    v["why"][:300],
                ]
                for v in doc["customers"]
            ],
        ),
    ]
    return "\n".join(lines) + "\n"


def child_report_of(report_dir: str, run_id: str, conn_id: str | None) -> tuple[str, dict[str, Any] | None]:
    """A backfill run's report URL and JSON (None when it wrote none)."""
    from label_backfill.reports import read_report, report_url

    return report_url(report_dir, BACKFILL_DAG_ID, run_id), read_report(
        report_dir, BACKFILL_DAG_ID, run_id, conn_id
    )
