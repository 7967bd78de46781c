"""The backfill's logic, one function per task of ``conversation_labels_backfill`` (the DAG file wires them).

validate -> preflight (before snapshot + safety guard) -> [dry run stops] -> delete -> wait for mutations ->
one job per day -> verify (after snapshot, report, fail on any drift or failed day).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import Any

from label_backfill.compare import ClickHouseSide, Comparison, PostgresSide, compare
from label_backfill.compare.report import DAY_COLUMNS, DayResult
from label_backfill.naming import (
    DayRange,
    InvalidInput,
    database_name,
    parse_day,
    utc_midnight,
    validate_customer_id,
)
from label_backfill.settings import BACKFILL_DAG_ID

log = logging.getLogger(__name__)

MAX_PARALLEL_DAYS_LIMIT = 16
MAX_DAYS_LIMIT = 366

ENV_RANGE_START = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
ENV_RANGE_END = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
ENV_CUSTOMER = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"


@dataclass(frozen=True)
class BackfillPlan:
    customer: str
    start_date: str
    end_date: str
    dry_run: bool
    max_parallel_days: int
    max_days: int
    allow_empty_source: bool
    max_delete_ratio: float
    sample_size: int
    region: str = ""
    database: str = ""

    @property
    def days(self) -> DayRange:
        return DayRange(dt.date.fromisoformat(self.start_date), dt.date.fromisoformat(self.end_date))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackfillPlan:
        return cls(**data)


def _int(params: dict[str, Any], name: str, low: int, high: int) -> int:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name}: {value!r} must be a whole number from {low} to {high}")
    return value


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: {value!r} must be true or false")
    return value


def validate_params(params: dict[str, Any], today: dt.date) -> BackfillPlan:
    """Check every param before anything touches a database; raise ``InvalidInput`` naming the param."""
    customer = validate_customer_id(params.get("customer"))
    first = parse_day(params.get("start_date"), "start_date")
    last = parse_day(params.get("end_date"), "end_date")
    if last < first:
        raise InvalidInput(f"end_date: {last} is before start_date {first} (both are inclusive)")
    if last >= today:
        raise InvalidInput(
            f"end_date: {last} is not a finished UTC day (today is {today}); the cron is still labeling it"
        )
    max_days = _int(params, "max_days", 1, MAX_DAYS_LIMIT)
    n_days = (last - first).days + 1
    if n_days > max_days:
        raise InvalidInput(f"end_date: the range {first}..{last} has {n_days} days, over max_days={max_days}")
    ratio = params.get("max_delete_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio < 1:
        raise InvalidInput(f"max_delete_ratio: {ratio!r} must be a number >= 1")
    return BackfillPlan(
        customer=customer,
        start_date=first.isoformat(),
        end_date=last.isoformat(),
        dry_run=_bool(params, "dry_run"),
        max_parallel_days=_int(params, "max_parallel_days", 1, MAX_PARALLEL_DAYS_LIMIT),
        max_days=max_days,
        allow_empty_source=_bool(params, "allow_empty_source"),
        max_delete_ratio=float(ratio),
        sample_size=_int(params, "sample_size", 0, 1000),
    )


def resolve_customer(plan: BackfillPlan, postgres: PostgresSide) -> BackfillPlan:
    """Attach the profile's region and ClickHouse database; an unknown customer is an input error."""
    region = postgres.region(plan.customer)
    if region is None:
        raise InvalidInput(f"customer: no profile {plan.customer!r} in Postgres (table profiles)")
    return BackfillPlan(
        **{**plan.to_dict(), "region": region, "database": database_name(plan.customer, region)}
    )


def guard(plan: BackfillPlan, before: Comparison) -> list[str]:
    """Reasons to refuse the delete (empty when it is safe). A wrong mapping must never wipe ClickHouse."""
    problems = []
    if not plan.allow_empty_source:
        empty = [d for d in before.days if d.pg_eligible == 0 and d.ch_rows > 0]
        if empty:
            listed = ", ".join(f"{d.date} ({d.ch_rows} rows)" for d in empty[:10])
            problems.append(
                f"Postgres reports no eligible conversations for {len(empty)} day(s) where ClickHouse holds rows: "
                f"{listed}. A wrong customer, a lagging replica or an outage looks like this; rerun with "
                "allow_empty_source=true only if those days are truly empty."
            )
    ch_rows, pg_rows = before.total("ch_rows"), before.total("pg_eligible")
    if ch_rows > plan.max_delete_ratio * max(pg_rows, 1):
        problems.append(
            f"the delete would remove {ch_rows} rows to rewrite {pg_rows}, more than max_delete_ratio="
            f"{plan.max_delete_ratio} times; check the customer and range, or raise max_delete_ratio."
        )
    return problems


def day_job_kwargs(plan: BackfillPlan, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """One mapped task's kwargs per day: the job's three env vars, a Job name and labels, the guards."""
    from label_backfill.kubernetes import job_name_for_day, label_value

    out = []
    for day in plan.days.days:
        out.append(
            {
                "day": day.isoformat(),
                "customer": plan.customer,
                "database": plan.database,
                "allow_empty_source": plan.allow_empty_source,
                "max_parallel_days": plan.max_parallel_days,
                "job_env": {
                    ENV_RANGE_START: utc_midnight(day).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ENV_RANGE_END: utc_midnight(day + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    ENV_CUSTOMER: plan.customer,
                },
                "job_name": job_name_for_day(plan.customer, day),
                "job_labels": {
                    "app.kubernetes.io/managed-by": "airflow",
                    "label-backfill/dag-id": label_value(dag_id),
                    "label-backfill/run-id": label_value(run_id),
                    "label-backfill/customer": label_value(plan.customer),
                    "label-backfill/day": day.isoformat(),
                },
            }
        )
    return out


def snapshot(plan: BackfillPlan, postgres: PostgresSide, clickhouse: ClickHouseSide) -> Comparison:
    return compare(postgres, clickhouse, plan.customer, plan.days, sample_size=plan.sample_size)


def comparison_from_dict(data: dict[str, Any]) -> Comparison:
    days = [
        DayResult(date=dt.date.fromisoformat(d["date"]), sample=d["sample"], **{k: d[k] for k in DAY_COLUMNS})
        for d in data["days"]
    ]
    return Comparison(
        customer=data["customer"],
        database=data["database"],
        first_day=dt.date.fromisoformat(data["start_date"]),
        last_day=dt.date.fromisoformat(data["end_date"]),
        days=days,
        usecases=data["usecases"],
        seconds=data.get("seconds", 0.0),
    )


def failed_days(day_states: dict[str, str], days: list[str]) -> list[str]:
    """Days whose mapped task did not succeed (``day_states``: ``label_day_<i>`` -> state)."""
    out = []
    for i, day in enumerate(days):
        state = day_states.get(f"label_day_{i}")
        if state != "success":
            out.append(day)
    return out


def verdict(after: Comparison, failed: list[str]) -> list[str]:
    """Why the run must fail (empty when the range is exact and every day succeeded)."""
    problems = []
    if failed:
        problems.append(f"day job(s) failed: {', '.join(failed)}")
    for kind in ("duplicates", "missing", "extra", "stale"):
        bad = [f"{d.date} ({getattr(d, kind)})" for d in after.days if getattr(d, kind)]
        if bad:
            problems.append(f"{kind} remain on {', '.join(bad)}")
    inconsistent = [str(d.date) for d in after.days if d.inconsistent]
    if inconsistent:
        problems.append(
            f"comparison inconsistent (checksum or count differs, no row does) on {', '.join(inconsistent)}"
        )
    uneven = [
        str(d.date)
        for d in after.days
        if not d.rows_agree and not (d.duplicates or d.missing or d.extra or d.stale)
    ]
    if uneven:
        problems.append(f"counts differ from Postgres on {', '.join(uneven)}")
    return problems


def render_markdown(
    plan: BackfillPlan, before: Comparison, after: Comparison | None, problems: list[str], run_id: str
) -> str:
    status = "DRY RUN (nothing changed)" if after is None else ("EXACT" if not problems else "FAILED")
    lines = [
        f"# {BACKFILL_DAG_ID}: {plan.customer} {plan.start_date}..{plan.end_date}",
        "",
        f"- run: `{run_id}`",
        f"- database: `{plan.database}`",
        f"- result: **{status}**",
    ]
    lines += [f"- problem: {p}" for p in problems]
    lines += ["", "## Before", "", before.render_markdown()]
    if after is not None:
        lines += ["", "## After", "", after.render_markdown()]
        lines += [
            "",
            "## Before -> after",
            "",
            "| metric | before | after | postgres |",
            "|---|---|---|---|",
            f"| rows | {before.total('ch_rows'):,} | {after.total('ch_rows'):,} | {after.total('pg_eligible'):,} |",
            f"| distinct conversations | {before.total('ch_distinct'):,} | {after.total('ch_distinct'):,} | "
            f"{after.total('pg_eligible'):,} |",
            f"| duplicate conversations | {before.total('duplicates'):,} | {after.total('duplicates'):,} | 0 |",
            f"| stale labels | {before.total('stale'):,} | {after.total('stale'):,} | 0 |",
            f"| missing | {before.total('missing'):,} | {after.total('missing'):,} | 0 |",
            f"| extra | {before.total('extra'):,} | {after.total('extra'):,} | 0 |",
        ]
    return "\n".join(lines)


def report_document(
    plan: BackfillPlan,
    before: Comparison,
    after: Comparison | None,
    problems: list[str],
    failed: list[str],
    run_id: str,
) -> dict[str, Any]:
    return {
        "dag_id": BACKFILL_DAG_ID,
        "run_id": run_id,
        "customer": plan.customer,
        "database": plan.database,
        "start_date": plan.start_date,
        "end_date": plan.end_date,
        "dry_run": plan.dry_run,
        "ok": after is not None and not problems,
        "problems": problems,
        "failed_days": failed,
        "days": (after or before).to_dict()["days"],
        "before": before.to_dict(),
        "after": after.to_dict() if after else None,
    }
