"""The backfill's logic, one function per task of ``conversation_labels_backfill`` (the DAG file wires them).

validate -> preflight (before snapshot + safety guard) -> [dry run stops] -> delete -> wait for mutations ->
one job per day -> verify (after snapshot, report, fail on any drift or failed day).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

from label_backfill.clickhouse import LabelTable
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
from label_backfill.params import (
    BACKFILL_DEFAULTS,
    BACKFILL_SAMPLE_SIZE,
    MAX_DAYS,
    MAX_PARALLEL_DAYS,
    MIN_DELETE_RATIO,
    REQUIRE_APPROVAL_DEFAULT,
    with_defaults,
)
from label_backfill.params import MAX_PARALLEL_DAYS_LIMIT as MAX_PARALLEL_DAYS_LIMIT  # the DAG reads it here
from label_backfill.proof import backfill_event_extra, decision_label, decision_text, label, table_line
from label_backfill.reports import write_report
from label_backfill.settings import BACKFILL_DAG_ID
from label_backfill.sides import Sides

log = logging.getLogger(__name__)

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
    require_approval: bool = REQUIRE_APPROVAL_DEFAULT
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


def _bool(params: dict[str, Any], name: str, default: bool = False) -> bool:
    value = params.get(name, default)
    if not isinstance(value, bool):
        raise InvalidInput(f"{name}: {value!r} must be true or false")
    return value


def validate_params(params: Mapping[str, Any], today: dt.date) -> BackfillPlan:
    """Check every param before anything touches a database; raise ``InvalidInput`` naming the param.

    The trigger form's schema holds the types; the values are checked here, with messages a person can act
    on (``params`` says why the schema does not carry them): the customer id, the ranges (never clamped), a
    finished end day, the range against ``max_days``, the loss guard. A null defaulted param is its default.
    """
    params = with_defaults(params, BACKFILL_DEFAULTS)
    customer = validate_customer_id(params.get("customer"))
    first = parse_day(params.get("start_date"), "start_date")
    last = parse_day(params.get("end_date"), "end_date")
    if last < first:
        raise InvalidInput(f"end_date: {last} is before start_date {first} (both are inclusive)")
    if last >= today:
        raise InvalidInput(
            f"end_date: {last} is not a finished UTC day (today is {today}); the cron is still labeling it"
        )
    max_days = MAX_DAYS.check("max_days", params.get("max_days"))
    n_days = (last - first).days + 1
    if n_days > max_days:
        raise InvalidInput(f"end_date: the range {first}..{last} has {n_days} days, over max_days={max_days}")
    ratio = params.get("max_delete_ratio")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or ratio < MIN_DELETE_RATIO:
        raise InvalidInput(f"max_delete_ratio: {ratio!r} must be a number >= {MIN_DELETE_RATIO}")
    return BackfillPlan(
        customer=customer,
        start_date=first.isoformat(),
        end_date=last.isoformat(),
        dry_run=_bool(params, "dry_run"),
        max_parallel_days=MAX_PARALLEL_DAYS.check("max_parallel_days", params.get("max_parallel_days")),
        max_days=max_days,
        allow_empty_source=_bool(params, "allow_empty_source"),
        max_delete_ratio=float(ratio),
        sample_size=BACKFILL_SAMPLE_SIZE.check("sample_size", params.get("sample_size")),
        require_approval=_bool(params, "require_approval", REQUIRE_APPROVAL_DEFAULT),
    )


def resolve_customer(plan: BackfillPlan, postgres: PostgresSide) -> BackfillPlan:
    """Attach the profile's region and ClickHouse database; an unknown customer is an input error."""
    region = postgres.region(plan.customer)
    if region is None:
        raise InvalidInput(f"customer: no profile {plan.customer!r} in Postgres (table profiles)")
    return BackfillPlan(
        **{**plan.to_dict(), "region": region, "database": database_name(plan.customer, region)}
    )


def guard(plan: BackfillPlan, before: Comparison, boundary: Boundary | None = None) -> list[str]:
    """Reasons to refuse the delete (empty when it is safe). A wrong mapping must never wipe ClickHouse.

    Judged per day on what would be *lost*: the distinct conversations ClickHouse holds that Postgres will
    not rewrite (``extra``). Duplicate rows are never loss: a day written three times is repaired, not refused.
    """
    problems = []
    empty = [d for d in before.days if d.pg_eligible == 0 and d.ch_rows > 0]
    if empty and not plan.allow_empty_source:
        listed = ", ".join(f"{d.date} ({d.ch_rows} rows)" for d in empty[:10])
        problems.append(
            f"Postgres reports no eligible conversations for {len(empty)} day(s) where ClickHouse holds rows: "
            f"{listed}. A wrong customer, a lagging replica or an outage looks like this; rerun with "
            "allow_empty_source=true only if those days are truly empty."
        )
    share = 1 - 1 / plan.max_delete_ratio
    lossy = [d for d in before.days if d.pg_eligible > 0 and d.extra and d.extra > share * d.ch_distinct]
    if lossy:
        listed = ", ".join(f"{d.date} ({d.extra:,} of {d.ch_distinct:,} not in Postgres)" for d in lossy[:10])
        problems.append(
            f"the delete would lose more than {share:.0%} of the conversations ClickHouse holds on "
            f"{len(lossy)} day(s) (max_delete_ratio={plan.max_delete_ratio}): {listed}. A lagging or partial "
            "source looks like this; check Postgres, or raise max_delete_ratio if those conversations are "
            "truly gone."
        )
    if boundary is not None:
        problems += boundary.problems()
    return problems


MAX_BOUNDARY_IDS = 100_000  # conversations deleted by id outside the range; past this, widen the range
_ID_BATCH = 10_000


@dataclass(frozen=True)
class Boundary:
    """Conversations whose start day in ClickHouse and in Postgres are on different sides of the range's edge.

    ``delete_ids``: stored outside the range, but their only true place is inside it (or nowhere): their
    outside rows are deleted with the range. ``moved_out``: stored inside the range, but Postgres now starts
    them outside it (id -> that day): the repair would delete them without rewriting, so it is refused.
    ``outside_days``: where the ``delete_ids`` rows sit.
    """

    delete_ids: list[str]
    moved_out: dict[str, str]
    outside_days: list[str]

    def problems(self) -> list[str]:
        out = []
        if self.moved_out:
            days = sorted(set(self.moved_out.values()))
            sample = ", ".join(f"{cid} ({day})" for cid, day in sorted(self.moved_out.items())[:5])
            out.append(
                f"{len(self.moved_out)} conversation(s) stored in this range now start outside it in Postgres "
                f"(e.g. {sample}): the delete would drop them without rewriting them. Add these day(s) to the "
                f"range: {', '.join(days)}."
            )
        if len(self.delete_ids) > MAX_BOUNDARY_IDS:
            out.append(
                f"{len(self.delete_ids):,} conversations of this range also have rows on other days (over "
                f"{MAX_BOUNDARY_IDS:,}); widen the range to include: {', '.join(self.outside_days[:20])}."
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Boundary:
        return cls(**data)


def _batches(ids: Iterable[str]) -> Iterator[list[str]]:
    ids = sorted(ids)
    for i in range(0, len(ids), _ID_BATCH):
        yield ids[i : i + _ID_BATCH]


def _day_of(iso: str | None) -> str:
    return (iso or "")[:10]  # both sides render UTC ISO timestamps: the first 10 characters are the UTC day


def find_boundary(
    plan: BackfillPlan,
    postgres: PostgresSide,
    clickhouse: ClickHouseSide,
    before: Comparison,
) -> Boundary:
    """Which conversations cross the range's edge (see ``Boundary``); ``before`` is the preflight comparison.

    Only drift can hide them, so the look-ups are bounded by it: the missing ids of drifted days are looked
    for in ClickHouse outside the range, the extra ids in Postgres, and one ClickHouse query finds the
    conversations stored both inside and outside the range.
    """
    days = plan.days
    first, last = days.first.isoformat(), days.last.isoformat()

    def outside(day: str) -> bool:
        return not first <= day <= last

    outside_rows: dict[str, set[str]] = {
        cid: {d.isoformat() for d in found}
        for cid, found in clickhouse.table.straddling(plan.customer, days).items()
    }
    straddling = set(outside_rows)
    missing = before.drift_ids.get("missing", set()) - straddling
    for batch in _batches(missing):
        for cid, rows in clickhouse.labels(plan.customer, batch).items():
            found = {_day_of(r["conversation_start_time"]) for r in rows} - {""}
            if any(outside(d) for d in found):
                outside_rows[cid] = {d for d in found if outside(d)}
    moved_out: dict[str, str] = {}
    for batch in _batches(before.drift_ids.get("extra", set()) | straddling):
        for cid, day in postgres.eligible_outside(plan.customer, batch, days).items():
            moved_out[cid] = day.isoformat()
            outside_rows.pop(cid, None)
    delete_ids = sorted(outside_rows)
    if delete_ids or moved_out:
        log.info(
            "%s: %s conversation(s) also stored outside the range (deleted there too), %s moved out of it",
            plan.customer,
            len(delete_ids),
            len(moved_out),
        )
    return Boundary(
        delete_ids=delete_ids,
        moved_out=moved_out,
        outside_days=sorted({d for found in outside_rows.values() for d in found}),
    )


def neighbour_days(plan: BackfillPlan, today: dt.date) -> tuple[list[dt.date], list[dt.date]]:
    """The days either side of the range, split into (checked, skipped): the cron may still write the last
    two days, so their rows may change without the repair touching them."""
    around = [plan.days.first - dt.timedelta(days=1), plan.days.last + dt.timedelta(days=1)]
    checked = [d for d in around if d <= today - dt.timedelta(days=2)]
    return checked, [d for d in around if d not in checked]


def day_job_env(customer: str, day: dt.date) -> dict[str, str]:
    """The job's three env vars for one customer-day (range mode ``[day, day + 1)``), whatever runs the job."""
    return {
        ENV_RANGE_START: utc_midnight(day).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ENV_RANGE_END: utc_midnight(day + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ENV_CUSTOMER: customer,
    }


def day_job_kwargs(plan: BackfillPlan) -> list[dict[str, Any]]:
    """One mapped ``label_day``'s kwargs per day: the day and what of the plan a day needs, nothing of a
    runner (the runner derives its job's env, and on Kubernetes the Job's name and labels, from these)."""
    return [
        {
            "day": day.isoformat(),
            "customer": plan.customer,
            "database": plan.database,
            "allow_empty_source": plan.allow_empty_source,
            "max_parallel_days": plan.max_parallel_days,
        }
        for day in plan.days.days
    ]


def snapshot(
    plan: BackfillPlan, postgres: PostgresSide, clickhouse: ClickHouseSide, *, one_pass: bool = False
) -> Comparison:
    """The range compared with Postgres (``one_pass``: the "before" of a repair, where most days drifted)."""
    return compare(
        postgres, clickhouse, plan.customer, plan.days, sample_size=plan.sample_size, one_pass=one_pass
    )


@dataclass
class Preflight:
    """What the preflight found: the before comparison, the range's edge, the neighbours' fingerprints."""

    before: Comparison
    boundary: Boundary
    neighbours: dict[str, list[int]]
    skipped_neighbours: list[str]
    problems: list[str]

    def to_xcom(self) -> dict[str, Any]:
        return {
            "before": self.before.to_dict(),
            "delete_ids": self.boundary.delete_ids,
            "boundary": self.boundary.to_dict(),
            "neighbours": self.neighbours,
            "skipped_neighbours": self.skipped_neighbours,
        }


def run_preflight(
    plan: BackfillPlan, postgres: PostgresSide, clickhouse: ClickHouseSide, today: dt.date
) -> Preflight:
    """The before comparison, the conversations crossing the range's edge, and the guard's findings."""
    before = snapshot(plan, postgres, clickhouse, one_pass=True)
    boundary = find_boundary(plan, postgres, clickhouse, before)
    checked, skipped = neighbour_days(plan, today)
    found = clickhouse.table.day_fingerprints(plan.customer, checked, boundary.delete_ids)
    return Preflight(
        before=before,
        boundary=boundary,
        neighbours={d.isoformat(): found.get(d.isoformat(), [0, 0]) for d in checked},
        skipped_neighbours=[d.isoformat() for d in skipped],
        problems=guard(plan, before, boundary),
    )


def edge_problems(plan: BackfillPlan, preflight: dict[str, Any], clickhouse: ClickHouseSide) -> list[str]:
    """After the rewrite, outside the per-day counts: nothing counted twice across the range's edge, no row
    left of a conversation deleted by id, and the neighbouring days byte-for-byte as the preflight saw them."""
    problems = []
    table = clickhouse.table
    twice = table.straddling(plan.customer, plan.days)
    if twice:
        sample = ", ".join(
            f"{cid} (also {', '.join(map(str, days))})" for cid, days in list(twice.items())[:5]
        )
        problems.append(f"{len(twice)} conversation(s) of the range also have a row outside it: {sample}")
    first, last = plan.days.first.isoformat(), plan.days.last.isoformat()
    left = []
    for batch in _batches(preflight["delete_ids"]):
        for cid, rows in clickhouse.labels(plan.customer, batch).items():
            if any(not first <= _day_of(r["conversation_start_time"]) <= last for r in rows):
                left.append(cid)
    if left:
        problems.append(
            f"{len(left)} conversation(s) deleted outside the range still have rows there: {left[:5]}"
        )
    neighbours = preflight["neighbours"]
    now = table.day_fingerprints(
        plan.customer, [dt.date.fromisoformat(d) for d in neighbours], preflight["delete_ids"]
    )
    changed = [d for d, fingerprint in neighbours.items() if now.get(d, [0, 0]) != fingerprint]
    if changed:
        problems.append(
            f"rows outside the range changed on {', '.join(changed)} (the repair must never touch them): "
            f"{', '.join(f'{d}: {neighbours[d][0]} -> {now.get(d, [0, 0])[0]} rows' for d in changed)}"
        )
    return problems


def clickhouse_state(plan: BackfillPlan, clickhouse: ClickHouseSide) -> list[dict[str, Any]] | None:
    """What ClickHouse holds per day, when Postgres cannot be compared (None if ClickHouse fails too)."""
    try:
        found = clickhouse.day_summaries(plan.customer, plan.days)
    except Exception as err:  # the report must still be written, saying ClickHouse was not read either
        log.warning("ClickHouse could not be read for the report: %s", err)
        return None
    out = []
    for day in plan.days.days:
        s = found.get(day)
        out.append(
            {
                "date": day.isoformat(),
                "pg_eligible": None,
                "ch_rows": s.rows if s else 0,
                "ch_distinct": s.distinct if s else 0,
                "duplicates": s.duplicates if s else 0,
                "ok": None,
            }
        )
    return out


def stop_our_delete(plan: BackfillPlan, table: LabelTable, watched: list[list[str]] | None) -> str:
    """Kill whatever delete of ours is still queued, so nothing empties the range after the run stopped.

    :param watched: ``[[host, mutation_id], ...]`` from ``delete_range``; None when it did not return (then
        any unfinished delete of this customer is ours: one backfill per customer at a time).
    :return: what was done, for the error message and the report.
    """
    mutations = (
        [tuple(m) for m in watched] if watched is not None else table.created_mutations(plan.customer, set())
    )
    killed = table.kill(mutations)
    if killed:
        return (
            f"killed our pending delete {', '.join(killed)} (a killed delete keeps the parts it already did)"
        )
    return "no delete of ours is pending"


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


VERDICT_EXACT, VERDICT_NOT_EXACT, VERDICT_DRY_RUN = "EXACT", "NOT EXACT", "DRY RUN"
VERDICT_REFUSED, VERDICT_NOT_REPAIRED, VERDICT_NOT_VERIFIED = "REFUSED", "NOT REPAIRED", "NOT VERIFIED"
VERDICT_REJECTED = "REJECTED"


def verdict(after: Comparison, failed: list[str], edge: list[str] | None = None) -> list[str]:
    """Why the run must fail (empty when the range is exact, every day succeeded and the edges hold)."""
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
    return problems + list(edge or [])


def render_markdown(
    plan: BackfillPlan,
    before: Comparison | None,
    after: Comparison | None,
    problems: list[str],
    run_id: str,
    *,
    result: str,
    clickhouse_now: list[dict[str, Any]] | None = None,
    approval: dict[str, Any] | None = None,
) -> str:
    lines = [
        f"# {BACKFILL_DAG_ID}: {plan.customer} {plan.start_date}..{plan.end_date}",
        "",
        f"- run: `{run_id}`",
        f"- database: `{plan.database}`",
        f"- result: **{result}**",
    ]
    if approval is not None:
        lines.append(f"- approval: {decision_text(approval)}")
    lines += [f"- problem: {p}" for p in problems]
    if before is not None:
        lines += ["", "## Before", "", before.render_markdown()]
    if clickhouse_now is not None:
        lines += ["", "## ClickHouse now (not compared with Postgres)", ""]
        lines += ["| day | ch_rows | ch_distinct | duplicates |", "|---|---|---|---|"]
        lines += [
            f"| {d['date']} | {d['ch_rows']:,} | {d['ch_distinct']:,} | {d['duplicates']:,} |"
            for d in clickhouse_now
        ]
    if after is not None and before is not None:
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
    before: Comparison | None,
    after: Comparison | None,
    problems: list[str],
    failed: list[str],
    run_id: str,
    *,
    result: str,
    checks: dict[str, Any] | None = None,
    clickhouse_now: list[dict[str, Any]] | None = None,
    approval: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report's JSON. ``result`` is the verdict (EXACT, NOT EXACT, DRY RUN, REFUSED, REJECTED, NOT
    REPAIRED, NOT VERIFIED); ``ok`` is true only for EXACT. ``approval``: what ``approve_delete`` decided
    (``proof.approval_decision``), None before it ran."""
    days = (after or before).to_dict()["days"] if (after or before) else []
    return {
        "dag_id": BACKFILL_DAG_ID,
        "run_id": run_id,
        "customer": plan.customer,
        "database": plan.database,
        "start_date": plan.start_date,
        "end_date": plan.end_date,
        "dry_run": plan.dry_run,
        "verdict": result,
        "ok": result == VERDICT_EXACT,
        "verified": after is not None,
        "problems": problems,
        "failed_days": failed,
        "days": clickhouse_now if clickhouse_now is not None and after is None else days,
        "before": before.to_dict() if before else None,
        "after": after.to_dict() if after else None,
        "checks": checks or {},
        "approval": approval,
    }


class TaskFailed(Exception):
    """The task fails for good: a retry cannot change it (the DAG raises it as ``AirflowFailException``)."""


@dataclass(frozen=True)
class Report:
    """Where a run's report goes: ``<report_dir>/conversation_labels_backfill/<run id made safe>.json`` and
    ``.md`` (``reports.safe_name``), on the store of ``conn_id`` when the folder is a URL."""

    report_dir: str
    run_id: str
    conn_id: str | None = None

    def write(
        self,
        plan: BackfillPlan,
        before: Comparison | None,
        after: Comparison | None,
        problems: list[str],
        failed: list[str],
        *,
        result: str,
        clickhouse_now: list[dict[str, Any]] | None = None,
        approval: dict[str, Any] | None = None,
    ) -> str:
        """Write the JSON and its markdown twin; return the JSON's URL."""
        kwargs = {"result": result, "clickhouse_now": clickhouse_now, "approval": approval}
        document = report_document(plan, before, after, problems, failed, self.run_id, **kwargs)
        markdown = render_markdown(plan, before, after, problems, self.run_id, **kwargs)
        return str(
            write_report(self.report_dir, BACKFILL_DAG_ID, self.run_id, document, markdown, self.conn_id)
        )


Publish = Callable[[str, "dict[str, Any] | None"], None]
"""Shows a task's outcome where people look: ``(label, asset event extra or None)`` (the DAG file renders the
label as the task's name in the run's task list, and sets the extra on the task's outlet event)."""


def _unseen(line: str, extra: dict[str, Any] | None) -> None:
    """The default ``Publish``: nothing shown (the report and the log hold everything)."""


def preflight(
    plan: BackfillPlan, sides: Sides, report: Report, today: dt.date, publish: Publish = _unseen
) -> dict[str, Any]:
    """The ``preflight`` task: the before snapshot and the range's edge; refuse the delete when it is unsafe
    (``TaskFailed``, report ``REFUSED``); a dry run writes its report (``DRY RUN``) here.

    Publishes ``BEFORE · <the drift about to be repaired>``, ``DRY RUN · would delete ...`` or ``REFUSED ·
    <why>``.

    :return: ``Preflight.to_xcom()``, what ``approve_delete``, ``delete_range`` and ``verify`` read.
    """
    clickhouse = sides.clickhouse(plan.database)
    if not clickhouse.table.exists():
        publish(label(VERDICT_REFUSED, f"ClickHouse has no table {clickhouse.table.read_name}"), None)
        raise TaskFailed(f"customer: ClickHouse has no table {clickhouse.table.read_name}")
    with sides.postgres() as postgres:
        found = run_preflight(plan, postgres, clickhouse, today)
    before = found.before
    log.info("before:\n%s", before.render_text())
    outside = len(found.boundary.delete_ids)
    if plan.dry_run or found.problems:
        result = VERDICT_REFUSED if found.problems else VERDICT_DRY_RUN
        path = report.write(plan, before, None, found.problems, [], result=result)
        log.info(
            "%s: would delete %s rows (and %s conversation(s) stored outside the range) and rewrite %s; "
            "report %s",
            result,
            before.total("ch_rows"),
            outside,
            before.total("pg_eligible"),
            path,
        )
    if found.problems:
        publish(label(VERDICT_REFUSED, *found.problems), None)
        raise TaskFailed("refusing to delete: " + " ".join(found.problems))
    edge = f"+ {outside:,} conversation(s) stored outside the range" if outside else ""
    if plan.dry_run:
        would = f"would delete {before.total('ch_rows'):,} rows and rewrite {before.total('pg_eligible'):,}"
        publish(label(VERDICT_DRY_RUN, would, edge, table_line(before)), None)
    else:
        publish(label("BEFORE", table_line(before), edge), None)
    return found.to_xcom()


def _same_clickhouse(before: Comparison, now: list[dict[str, Any]]) -> bool:
    """Whether ClickHouse's side of each day (rows, distinct, duplicates) is what the preflight saw."""
    seen = [(str(d.date), d.ch_rows, d.ch_distinct, d.duplicates) for d in before.days]
    return seen == [(d["date"], d["ch_rows"], d["ch_distinct"], d["duplicates"]) for d in now]


def rejected(
    plan: BackfillPlan,
    before: Comparison,
    decision: dict[str, Any],
    clickhouse: ClickHouseSide,
    sides: Sides,
    report: Report,
    publish: Publish,
) -> NoReturn:
    """The approval was rejected (or not answered in time): ``delete_range`` never ran. Compare again (the
    drift remains), write the report with verdict REJECTED, and fail naming who rejected and that ClickHouse
    is unchanged: the range is not equal to Postgres, so the run is not green."""
    who = decision_text(decision)
    after, clickhouse_now = None, None
    try:
        with sides.postgres() as postgres:
            after = snapshot(plan, postgres, clickhouse)
        now = after.to_dict()["days"]
    except Exception as err:  # the decision stands; say what ClickHouse holds without Postgres
        log.warning("Postgres could not be compared after the rejection: %s", err)
        clickhouse_now = clickhouse_state(plan, clickhouse)
        now = clickhouse_now
    if now is None:
        held, state = "ClickHouse could not be read", "not checked"
    else:
        held = f"ClickHouse holds {sum(d['ch_rows'] for d in now):,} rows of the range"
        state = (
            "unchanged" if _same_clickhouse(before, now) else "CHANGED since the preflight: another writer?"
        )
    problems = [f"the delete was {who}: nothing was deleted and the drift remains; {held} ({state})"]
    path = report.write(
        plan,
        before,
        after,
        problems,
        [],
        result=VERDICT_REJECTED,
        clickhouse_now=clickhouse_now,
        approval=decision,
    )
    log.info("%s; report: %s", VERDICT_REJECTED, path)
    shown = table_line(before, after) if after is not None else held
    publish(label(decision_label(decision), "nothing deleted", shown), None)
    raise TaskFailed(
        f"{VERDICT_REJECTED}: the delete was {who}; nothing was deleted; {held} (before: "
        f"{before.total('ch_rows'):,}, {state}); report {path}"
    )


def verify(
    plan_dict: dict[str, Any] | None,
    found: dict[str, Any] | None,
    states: dict[str, str],
    watched: list[list[str]] | None,
    sides: Sides,
    report: Report,
    refused: Mapping[str, str | None] | None = None,
    decision: dict[str, Any] | None = None,
    publish: Publish = _unseen,
) -> dict[str, Any]:
    """The ``verify`` task: the after snapshot against Postgres, a report whatever happened once a delete may
    have happened, and ``TaskFailed`` on any drift, failed day or edge problem.

    Verdicts: EXACT, NOT EXACT, REJECTED (the approval was refused or not answered: ``delete_range`` was
    skipped, nothing to kill), NOT REPAIRED (stopped before rewriting: our queued delete is killed first) or
    NOT VERIFIED (Postgres could not be compared: a ``RuntimeError``, so the task retries). Each is published
    (``publish``) with the before -> after table; an EXACT one with the asset event's extra.

    :param plan_dict: ``validate``'s XCom; ``found``: ``preflight``'s (None when the task did not succeed).
    :param states: this run's task states (``label_day_<i>`` per mapped day).
    :param watched: the ``(host, mutation_id)`` pairs ``delete_range`` returned, None if it returned none.
    :param refused: why ``validate`` / ``claim_customer`` / ``preflight`` refused the run (task id ->
        message), when they said.
    :param decision: ``approve_delete``'s XCom ``decision`` (None when it did not decide).
    """
    if not plan_dict or not found:
        stopped = next(
            (t for t in ("validate", "claim_customer", "preflight") if states.get(t) != "success"),
            "preflight",
        )
        why = (refused or {}).get(stopped)
        publish(label("nothing deleted", f"{stopped} did not succeed"), None)
        raise TaskFailed(
            f"nothing was deleted: {stopped} "
            + (f"refused the run: {why}" if why else "did not succeed (see its log)")
        )
    plan = BackfillPlan.from_dict(plan_dict)
    before = comparison_from_dict(found["before"])
    clickhouse = sides.clickhouse(plan.database)
    if decision and not decision.get("approved") and states.get("delete_range") == "skipped":
        rejected(plan, before, decision, clickhouse, sides, report, publish)
    stopped_at = next((t for t in ("delete_range", "wait_for_mutations") if states.get(t) != "success"), None)
    stop_note = ""
    if stopped_at:  # no day ran: whatever delete of ours is still queued must never run
        stop_note = stop_our_delete(plan, clickhouse.table, watched)
    failed = [] if stopped_at else failed_days(states, [d.isoformat() for d in plan.days.days])
    try:
        with sides.postgres() as postgres:
            after = snapshot(plan, postgres, clickhouse)
        edge = edge_problems(plan, found, clickhouse)
    except Exception as err:
        clickhouse_now = clickhouse_state(plan, clickhouse)
        problems = [f"range not verified: {type(err).__name__}: {err}"] + ([stop_note] if stop_note else [])
        path = report.write(
            plan,
            before,
            None,
            problems,
            failed,
            result=VERDICT_NOT_VERIFIED,
            clickhouse_now=clickhouse_now,
            approval=decision,
        )
        held = (
            f"ClickHouse holds {sum(d['ch_rows'] for d in clickhouse_now):,} rows of the range"
            if clickhouse_now is not None
            else "ClickHouse could not be read either"
        )
        publish(label(VERDICT_NOT_VERIFIED, f"{held} (before: {before.total('ch_rows'):,})", str(err)), None)
        raise RuntimeError(
            f"{plan.customer} {plan.start_date}..{plan.end_date} is NOT VERIFIED: {err}; {held} "
            f"(before: {before.total('ch_rows'):,}); report {path}"
        ) from err
    log.info("after:\n%s", after.render_text())
    if stopped_at:
        problems = [f"the repair stopped at {stopped_at} before rewriting; {stop_note}"]
        result = VERDICT_NOT_REPAIRED
    else:
        problems = verdict(after, failed, edge)
        result = VERDICT_NOT_EXACT if problems else VERDICT_EXACT
    path = report.write(plan, before, after, problems, failed, result=result, approval=decision)
    log.info("%s; report: %s", result, path)
    extra = backfill_event_extra(
        customer=plan.customer,
        database=plan.database,
        start_date=plan.start_date,
        end_date=plan.end_date,
        verdict=result,
        before=before,
        after=after,
        report=str(path),
        run_id=report.run_id,
        approval=decision,
    )
    shown = [f"stopped at {stopped_at}"] if stopped_at else []
    publish(label(result, *shown, table_line(before, after), *problems[:1]), extra)
    if stopped_at:
        unchanged = "unchanged" if after.total("ch_rows") == before.total("ch_rows") else "CHANGED"
        raise TaskFailed(
            f"{problems[0]}; ClickHouse holds {after.total('ch_rows'):,} rows of the range "
            f"(before: {before.total('ch_rows'):,}, {unchanged}); report {path}"
        )
    if problems:
        raise TaskFailed(f"backfill of {plan.customer} is not exact: " + "; ".join(problems))
    return {"report": str(path), "rows": after.total("ch_rows"), "verdict": result, **extra}
