"""The approval page of ``approve_delete``: what a person approves before the range delete.

Built from ``validate``'s and ``preflight``'s XComs only (no database read): the customer and days, the rows
ClickHouse will delete (the range's rows, plus the conversations deleted by id outside it), the rows Postgres
will rewrite, the drift before, per day, and what the safety guard checked. Airflow renders the body as
Markdown on the task's "Required Actions" page.
"""

from __future__ import annotations

from typing import Any

from label_backfill.backfill import BackfillPlan, Boundary, comparison_from_dict
from label_backfill.compare.report import Comparison, markdown_table
from label_backfill.proof import duration_text

MAX_DAY_ROWS = 31  # per-day rows on the page; the report has every day


def guard_findings(
    plan: BackfillPlan,
    before: Comparison,
    boundary: Boundary,
    neighbours: list[str],
    skipped_neighbours: list[str],
) -> list[str]:
    """What the guard checked and found, one sentence each (it refuses before asking, so these passed)."""
    share = 1 - 1 / plan.max_delete_ratio
    limit = f"refused above {share:.0%} per day (max_delete_ratio {plan.max_delete_ratio})"
    lossy = [d for d in before.days if d.pg_eligible > 0 and d.ch_distinct and d.extra]
    if lossy:
        worst = max(lossy, key=lambda d: d.extra / d.ch_distinct)
        findings = [
            f"Loss: {sum(d.extra for d in lossy):,} conversation(s) ClickHouse holds are not eligible in "
            f"Postgres and are not rewritten; worst day {worst.date}: {worst.extra:,} of "
            f"{worst.ch_distinct:,} ({worst.extra / worst.ch_distinct:.1%}); {limit}."
        ]
    else:
        findings = [f"Loss: none, every conversation ClickHouse holds is eligible in Postgres ({limit})."]
    empty = [d for d in before.days if d.pg_eligible == 0 and d.ch_rows > 0]
    if empty:
        listed = ", ".join(f"{d.date} ({d.ch_rows:,} rows)" for d in empty[:10])
        findings.append(
            f"Empty source: Postgres has no eligible conversation on {len(empty)} day(s) where ClickHouse holds "
            f"rows: {listed}. Allowed by allow_empty_source=true: those rows are deleted and not rewritten."
        )
    else:
        findings.append(
            "Empty source: none (every day with rows in ClickHouse has eligible rows in Postgres)."
        )
    if boundary.delete_ids:
        findings.append(
            f"Edge: {len(boundary.delete_ids):,} conversation(s) of this range are also stored outside it "
            f"(on {', '.join(boundary.outside_days[:10])}): those rows are deleted too, so each ends with one row."
        )
    else:
        findings.append("Edge: no conversation of this range is stored outside it.")
    findings.append("Moved out: no conversation stored in this range now starts outside it.")
    if neighbours:
        findings.append(
            f"Neighbours: {', '.join(neighbours)} fingerprinted now; verify fails if they change."
            + (
                f" Not compared (the cron may still write them): {', '.join(skipped_neighbours)}."
                if skipped_neighbours
                else ""
            )
        )
    elif skipped_neighbours:
        findings.append(
            f"Neighbours: not compared (the cron may still write them): {', '.join(skipped_neighbours)}."
        )
    inconsistent = [str(d.date) for d in before.days if d.inconsistent]
    if inconsistent:
        findings.append(f"Inconsistent comparison before the repair on {', '.join(inconsistent)}.")
    return findings


def approval_request(
    plan_dict: dict[str, Any], found: dict[str, Any], timeout_seconds: int | None
) -> tuple[str, str]:
    """The approval's subject and Markdown body from ``validate``'s and ``preflight``'s XComs.

    :param timeout_seconds: how long the request waits; no answer by then counts as Reject.
    """
    plan = BackfillPlan.from_dict(plan_dict)
    before = comparison_from_dict(found["before"])
    boundary = Boundary.from_dict(found["boundary"])
    n_days = len(before.days)
    to_delete, to_rewrite = before.total("ch_rows"), before.total("pg_eligible")
    outside = len(boundary.delete_ids)
    subject = (
        f"Delete {to_delete:,} ClickHouse rows of {plan.customer} {plan.start_date}..{plan.end_date} "
        f"and rewrite {to_rewrite:,} from Postgres?"
    )
    summary = [
        ["ClickHouse rows to delete (the range's rows)", f"{to_delete:,}"],
        [
            "conversations also deleted outside the range (every row of each)",
            f"{outside:,}" + (f" (on {', '.join(boundary.outside_days[:10])})" if outside else ""),
        ],
        ["Postgres rows to rewrite (eligible conversations)", f"{to_rewrite:,}"],
    ]
    table = [
        ["rows", f"{to_delete:,}", f"{to_rewrite:,}"],
        ["distinct conversations", f"{before.total('ch_distinct'):,}", f"{to_rewrite:,}"],
        ["duplicate conversations", f"{before.total('duplicates'):,}", "0"],
        ["stale labels", f"{before.total('stale'):,}", "0"],
        ["missing", f"{before.total('missing'):,}", "0"],
        ["extra", f"{before.total('extra'):,}", "0"],
    ]
    days = [
        [
            str(d.date),
            f"{d.pg_eligible:,}",
            f"{d.ch_rows:,}",
            f"{d.ch_distinct:,}",
            f"{d.duplicates:,}",
            f"{d.stale:,}",
            f"{d.missing:,}",
            f"{d.extra:,}",
            d.status,
        ]
        for d in before.days[:MAX_DAY_ROWS]
    ]
    findings = guard_findings(
        plan, before, boundary, sorted(found.get("neighbours", {})), list(found.get("skipped_neighbours", []))
    )
    body = [
        f"**Customer** `{plan.customer}` (ClickHouse database `{plan.database}`)  ",
        f"**Days** {plan.start_date}..{plan.end_date}: {n_days} UTC day(s) of conversation start",
        "",
        markdown_table(["what", "rows"], summary),
        "",
        "**Before the repair**",
        "",
        markdown_table(["", "ClickHouse now", "Postgres"], table),
        "",
        "**Per day**",
        "",
        markdown_table(
            [
                "day",
                "pg_eligible",
                "ch_rows",
                "ch_distinct",
                "duplicates",
                "stale",
                "missing",
                "extra",
                "status",
            ],
            days,
        ),
    ]
    if n_days > MAX_DAY_ROWS:
        body += ["", f"... {n_days - MAX_DAY_ROWS} more day(s) in the preflight's log and the run's report."]
    body += ["", "**Safety guard: passed** (it refuses before asking)", ""]
    body += [f"- {f}" for f in findings]
    body += [
        "",
        "**Approve**: delete these rows, wait for the mutation, rewrite each day from Postgres, verify.  ",
        "**Reject**: nothing is deleted; the run ends with verdict REJECTED. "
        f"No answer within {duration_text(timeout_seconds)} counts as Reject.",
    ]
    return subject, "\n".join(body)
