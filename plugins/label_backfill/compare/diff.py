"""The comparison algorithm: two aggregate queries prove clean days; only drifted days are read row by row.

Row-level work is columnar: both sides' rows of a chunk of drifted days arrive as Arrow tables, ClickHouse
rows are grouped per conversation (min and max of every label), a full outer hash join on ``conversation_id``
lines them up with Postgres, and each kind of drift is a vectorised mask counted per day.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from label_backfill.compare.dialects import LABEL_COLUMNS, CheckedSide, ComparisonSide, DaySummary
from label_backfill.compare.report import Comparison, DayResult
from label_backfill.naming import DayRange, contiguous_ranges

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_SIZE = 20
MAX_DAYS_PER_FETCH = 16  # bounds the memory of one row-level round (~25k rows a day per side here)
KINDS = ("duplicates", "missing", "extra", "stale")


def day_is_clean(pg: DaySummary | None, ch: DaySummary | None) -> bool:
    """Counts and checksums agree and nothing is duplicated (a day absent on both sides is clean)."""
    if pg is None or ch is None:
        return pg is None and ch is None
    return pg.rows == ch.rows == ch.distinct and ch.duplicates == 0 and pg.checksum == ch.checksum


def diff_rows(pg: pa.Table, ch: pa.Table) -> dict[dt.date, tuple[DayResult, dict[str, list[str]]]]:
    """Row-level comparison of two ``ROW_SCHEMA`` tables: per day, the counts and the (sorted) ids of each kind.

    No aggregation over strings: missing and extra are set membership, duplicates a count of ids, stale a
    column-by-column comparison of every ClickHouse row with its Postgres row (inner hash join). Missing and
    stale are counted on the Postgres start day, extra and duplicates on the ClickHouse one.
    """
    flagged: dict[str, pa.Table] = {}
    copies = pc.value_counts(ch["conversation_id"])
    repeated = pc.filter(copies, pc.greater(copies.field("counts"), 1))
    dup_rows = ch.filter(pc.is_in(ch["conversation_id"], value_set=repeated.field("values")))
    flagged["duplicates"] = dup_rows.select(["day", "conversation_id"])
    flagged["missing"] = pg.filter(
        pc.invert(pc.is_in(pg["conversation_id"], value_set=ch["conversation_id"]))
    )
    flagged["extra"] = ch.filter(pc.invert(pc.is_in(ch["conversation_id"], value_set=pg["conversation_id"])))
    both = pg.join(ch.drop_columns(["day"]), keys="conversation_id", join_type="inner", right_suffix="_ch")
    differs = None
    for c in LABEL_COLUMNS:
        this = pc.not_equal(both[c], both[f"{c}_ch"])
        differs = this if differs is None else pc.or_(differs, this)
    flagged["stale"] = both.filter(differs) if differs is not None else both.slice(0, 0)

    results: dict[dt.date, DayResult] = {}
    ids: dict[dt.date, dict[str, list[str]]] = defaultdict(lambda: {k: [] for k in KINDS})

    def result(d: dt.date) -> DayResult:
        return results.setdefault(d, DayResult(date=d))

    for d, n in zip(*_count_by(pg["day"]), strict=True):
        result(d).pg_eligible = n
    for d, n in zip(*_count_by(ch["day"]), strict=True):
        result(d).ch_rows = result(d).ch_distinct = n
    for d, n in zip(*_count_by(dup_rows["day"]), strict=True):
        result(d).ch_distinct -= n  # every copy of a duplicated conversation ...
    for kind in KINDS:
        distinct = (
            flagged[kind]
            .select(["day", "conversation_id"])
            .group_by(["day", "conversation_id"])
            .aggregate([])
        )
        for d, n in zip(*_count_by(distinct["day"]), strict=True):
            setattr(result(d), kind, n)
            if kind == "duplicates":
                result(d).ch_distinct += n  # ... counted back once
        if distinct.num_rows:
            distinct = distinct.sort_by([("day", "ascending"), ("conversation_id", "ascending")])
            for d, cid in zip(
                distinct["day"].to_pylist(), distinct["conversation_id"].to_pylist(), strict=True
            ):
                ids[d][kind].append(cid)
    return {d: (r, ids[d]) for d, r in sorted(results.items())}


def _count_by(column: pa.ChunkedArray) -> tuple[list[dt.date], list[int]]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()


def sample_ids(ids: dict[str, list[str]], size: int) -> dict[str, list[str]]:
    """Up to ``size`` ids, spread across the kinds of drift, each id with every kind it shows."""
    picked: list[str] = []
    queues = [list(v[: size + 1]) for v in ids.values()]
    while len(picked) < size and any(queues):
        for q in queues:
            while q and q[0] in picked:
                q.pop(0)
            if q and len(picked) < size:
                picked.append(q.pop(0))
    kinds = {kind: set(v) for kind, v in ids.items()}
    return {cid: [k for k, members in kinds.items() if cid in members] for cid in picked}


def both_sides(pg_call: Callable[..., Any], ch_call: Callable[..., Any], *args: Any) -> tuple[Any, Any]:
    """Run the same question on both engines at once: each waits on its own server, not on the other."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ch_future = pool.submit(ch_call, *args)
        pg_result = pg_call(*args)
        return pg_result, ch_future.result()


def compare(
    postgres: ComparisonSide,
    clickhouse: CheckedSide,
    customer: str,
    days: DayRange,
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
) -> Comparison:
    """Compare one customer's days: per-day counts, drift kinds, a bounded sample and usecase distribution.

    :param postgres: the source of truth.
    :param clickhouse: the side checked against it; its ``database`` names the comparison.
    """
    began = time.monotonic()
    pg_summary, ch_summary = both_sides(postgres.day_summaries, clickhouse.day_summaries, customer, days)
    results: dict[dt.date, DayResult] = {}
    drifted: list[dt.date] = []
    for day in days.days:
        pg, ch = pg_summary.get(day), ch_summary.get(day)
        if day_is_clean(pg, ch):
            n = pg.rows if pg else 0
            results[day] = DayResult(date=day, pg_eligible=n, ch_rows=n, ch_distinct=n)
        else:
            drifted.append(day)
    samples: dict[dt.date, dict[str, list[str]]] = {}
    drift_ids: dict[str, set[str]] = {"missing": set(), "extra": set()}
    for run in contiguous_ranges(drifted):
        for first in range(0, len(run), MAX_DAYS_PER_FETCH):
            chunk = DayRange(run.days[first], run.days[min(first + MAX_DAYS_PER_FETCH, len(run)) - 1])
            rows = diff_rows(*both_sides(postgres.rows_arrow, clickhouse.rows_arrow, customer, chunk))
            for day in chunk.days:
                result, ids = rows.get(day, (DayResult(date=day), {k: [] for k in KINDS}))
                if result.rows_agree:
                    # the aggregates said drift, the rows say none: one of the two is wrong; never clean
                    result.inconsistent = True
                    log.warning(
                        "%s %s: summaries differ (postgres %s, clickhouse %s) but no row does",
                        customer,
                        day,
                        pg_summary.get(day),
                        ch_summary.get(day),
                    )
                results[day] = result
                for kind, members in drift_ids.items():
                    members.update(ids[kind])
                if sample_size:
                    samples[day] = sample_ids(ids, sample_size)
    _attach_samples(postgres, clickhouse, customer, results, samples)
    usecases: dict[str, dict[str, int]] = defaultdict(dict)
    for side in (postgres, clickhouse):
        for usecase, n in side.usecases(customer, days).items():
            usecases[usecase][side.name] = int(n)
    comparison = Comparison(
        customer=customer,
        database=clickhouse.database,
        first_day=days.first,
        last_day=days.last,
        days=[results[d] for d in days.days],
        usecases=dict(usecases),
        seconds=time.monotonic() - began,
        drift_ids=drift_ids,
    )
    log.info(
        "compared %s %s in %.2f s: %s drifted day(s)",
        customer,
        days,
        comparison.seconds,
        len(comparison.drifted_days),
    )
    return comparison


def _attach_samples(
    postgres: ComparisonSide,
    clickhouse: CheckedSide,
    customer: str,
    results: dict[dt.date, DayResult],
    samples: dict[dt.date, dict[str, list[str]]],
) -> None:
    """Both sides' labels of every sampled conversation: one query per side for the whole comparison."""
    wanted = sorted({cid for kinds in samples.values() for cid in kinds})
    if not wanted:
        return
    pg_labels = postgres.labels(customer, wanted)
    ch_labels = clickhouse.labels(customer, wanted)
    for day, kinds in samples.items():
        results[day].sample = [
            {
                "conversation_id": cid,
                "kinds": k,
                "postgres": pg_labels.get(cid),
                "clickhouse": ch_labels.get(cid, []),
            }
            for cid, k in kinds.items()
        ]
