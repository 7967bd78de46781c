"""The comparison algorithm: two aggregate queries prove clean days; only drifted days are read row by row.

Row-level work is columnar: both sides' fingerprints of a chunk of drifted days arrive as Arrow tables,
ClickHouse rows are grouped per conversation, a full outer hash join on ``conversation_id`` lines them up
with Postgres, and each kind of drift is a vectorised mask counted per day.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from label_backfill.compare.dialects import ClickHouseSide, DaySummary, PostgresSide
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
    """Row-level comparison of fingerprint tables: per day, the counts and the (sorted) ids of each kind.

    A conversation is counted on its Postgres start day, or on its ClickHouse one when Postgres has no
    eligible row for it; ``ch_rows`` and ``ch_distinct`` are counted on ClickHouse's own days.
    """
    per_conversation = ch.group_by("conversation_id").aggregate(
        [("fingerprint", "count"), ("fingerprint", "min"), ("fingerprint", "max"), ("day", "min")]
    )
    joined = pg.join(per_conversation, keys="conversation_id", join_type="full outer")
    in_pg = pc.is_valid(joined["fingerprint"])
    in_ch = pc.is_valid(joined["fingerprint_count"])
    masks = {
        "duplicates": pc.fill_null(pc.greater(joined["fingerprint_count"], 1), False),
        "missing": pc.and_(in_pg, pc.invert(in_ch)),
        "extra": pc.and_(in_ch, pc.invert(in_pg)),
        "stale": pc.fill_null(
            pc.and_(
                in_pg,
                pc.or_(
                    pc.not_equal(joined["fingerprint_min"], joined["fingerprint"]),
                    pc.not_equal(joined["fingerprint_max"], joined["fingerprint"]),
                ),
            ),
            False,
        ),
    }
    day = pc.coalesce(joined["day"], joined["day_min"])
    results: dict[dt.date, DayResult] = {}
    ids: dict[dt.date, dict[str, list[str]]] = defaultdict(lambda: {k: [] for k in KINDS})

    def result(d: dt.date) -> DayResult:
        return results.setdefault(d, DayResult(date=d))

    for d, n in zip(*_count_by(pg["day"]), strict=True):
        result(d).pg_eligible = n
    for d, n in zip(*_count_by(ch["day"]), strict=True):
        result(d).ch_rows = n
    for d, n in zip(*_count_by(per_conversation["day_min"]), strict=True):
        result(d).ch_distinct = n
    for kind, mask in masks.items():
        flagged = pa.table({"day": pc.filter(day, mask), "id": pc.filter(joined["conversation_id"], mask)})
        for d, n in zip(*_count_by(flagged["day"]), strict=True):
            setattr(result(d), kind, n)
        if flagged.num_rows:
            flagged = flagged.sort_by([("day", "ascending"), ("id", "ascending")])
            for d, cid in zip(flagged["day"].to_pylist(), flagged["id"].to_pylist(), strict=True):
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
    for run in contiguous_ranges(drifted):
        for first in range(0, len(run), MAX_DAYS_PER_FETCH):
            chunk = DayRange(run.days[first], run.days[min(first + MAX_DAYS_PER_FETCH, len(run)) - 1])
            rows = diff_rows(
                postgres.fingerprints_arrow(customer, chunk), clickhouse.fingerprints_arrow(customer, chunk)
            )
            for day in chunk.days:
                result, ids = rows.get(day, (DayResult(date=day), {k: [] for k in KINDS}))
                results[day] = result
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
    postgres: PostgresSide,
    clickhouse: ClickHouseSide,
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
