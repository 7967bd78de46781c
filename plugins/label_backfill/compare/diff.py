"""The comparison algorithm: two aggregate queries prove clean days; only drifted days are read row by row."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from typing import Any

from label_backfill.compare.dialects import ClickHouseSide, DaySummary, Fingerprint, PostgresSide
from label_backfill.compare.report import Comparison, DayResult
from label_backfill.naming import DayRange

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_SIZE = 20


def day_is_clean(pg: DaySummary | None, ch: DaySummary | None) -> bool:
    """Counts and checksums agree and nothing is duplicated (a day absent on both sides is clean)."""
    if pg is None or ch is None:
        return pg is None and ch is None
    return pg.rows == ch.rows == ch.distinct and ch.duplicates == 0 and pg.checksum == ch.checksum


def diff_day(
    day: dt.date, pg_rows: list[Fingerprint], ch_rows: list[Fingerprint]
) -> tuple[DayResult, dict[str, list[str]]]:
    """Row-level comparison of one day: counts of each kind and the ids of each kind (sorted)."""
    pg = {r.conversation_id: r.fingerprint for r in pg_rows}
    ch: dict[str, list[int]] = defaultdict(list)
    for r in ch_rows:
        ch[r.conversation_id].append(r.fingerprint)
    ids = {
        "duplicates": sorted(i for i, fps in ch.items() if len(fps) > 1),
        "missing": sorted(pg.keys() - ch.keys()),
        "extra": sorted(ch.keys() - pg.keys()),
        "stale": sorted(i for i, fps in ch.items() if i in pg and any(f != pg[i] for f in fps)),
    }
    result = DayResult(
        date=day,
        pg_eligible=len(pg),
        ch_rows=len(ch_rows),
        ch_distinct=len(ch),
        **{kind: len(v) for kind, v in ids.items()},
    )
    return result, ids


def _sample_ids(ids: dict[str, list[str]], size: int) -> dict[str, list[str]]:
    """Up to ``size`` ids, spread across the kinds of drift, each id with every kind it shows."""
    picked: list[str] = []
    queues = [list(v) for v in ids.values()]
    while len(picked) < size and any(queues):
        for q in queues:
            while q and q[0] in picked:
                q.pop(0)
            if q and len(picked) < size:
                picked.append(q.pop(0))
    return {cid: [k for k, v in ids.items() if cid in set(v)] for cid in picked}


def compare(
    postgres: PostgresSide,
    clickhouse: ClickHouseSide,
    customer: str,
    days: DayRange,
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
) -> Comparison:
    """Compare one customer's days: per-day counts, drift kinds, a bounded sample and usecase distribution."""
    began = time.monotonic()
    pg_summary = postgres.day_summaries(customer, days)
    ch_summary = clickhouse.day_summaries(customer, days)
    results: list[DayResult] = []
    for day in days.days:
        pg, ch = pg_summary.get(day), ch_summary.get(day)
        if day_is_clean(pg, ch):
            n = pg.rows if pg else 0
            results.append(DayResult(date=day, pg_eligible=n, ch_rows=n, ch_distinct=n))
            continue
        one_day = DayRange(day, day)
        result, ids = diff_day(
            day, postgres.fingerprints(customer, one_day), clickhouse.fingerprints(customer, one_day)
        )
        if sample_size:
            result.sample = _sample(postgres, clickhouse, customer, _sample_ids(ids, sample_size))
        results.append(result)
    usecases: dict[str, dict[str, int]] = defaultdict(dict)
    for side in (postgres, clickhouse):
        for usecase, n in side.usecases(customer, days).items():
            usecases[usecase][side.name] = int(n)
    comparison = Comparison(
        customer=customer,
        database=clickhouse.database,
        first_day=days.first,
        last_day=days.last,
        days=results,
        usecases=dict(usecases),
        seconds=time.monotonic() - began,
    )
    log.info(
        "compared %s %s in %.2f s: %s drifted day(s)",
        customer,
        days,
        comparison.seconds,
        len(comparison.drifted_days),
    )
    return comparison


def _sample(
    postgres: PostgresSide, clickhouse: ClickHouseSide, customer: str, kinds: dict[str, list[str]]
) -> list[dict[str, Any]]:
    if not kinds:
        return []
    pg_labels = postgres.labels(customer, kinds)
    ch_labels = clickhouse.labels(customer, kinds)
    return [
        {
            "conversation_id": cid,
            "kinds": k,
            "postgres": pg_labels.get(cid),
            "clickhouse": ch_labels.get(cid, []),
        }
        for cid, k in kinds.items()
    ]
