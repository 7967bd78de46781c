"""The comparison algorithm: two aggregate queries prove clean days; only drifted days are read row by row.

Row-level work is columnar and reads no label: both sides' rows of a chunk of drifted days arrive as Arrow
tables of (id, day, fingerprint); missing and extra are set membership on the id, duplicates a count of ids,
stale a fingerprint that differs (inner hash join on ``conversation_id``), each counted per day. Labels are
read only for the sample the report shows, and there they check the fingerprint: a sampled stale
conversation whose labels are equal on both sides makes its day inconsistent, never clean.

``one_pass`` (the backfill's "before" snapshot, where most days have drifted): no aggregate first, every day
is read as fingerprints once, and a day whose rows agree is clean.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from label_backfill.compare.dialects import FINGERPRINT, KEY, CheckedSide, ComparisonSide, DaySummary
from label_backfill.compare.report import Comparison, DayResult
from label_backfill.naming import DayRange, contiguous_ranges

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_SIZE = 20
MAX_DAYS_PER_FETCH = 16  # bounds the memory of one row-level round (~25k rows a day per side here)
FETCHES_AT_ONCE = 2  # row-level rounds read at once: Postgres computes the fingerprints on a core each
KINDS = ("duplicates", "missing", "extra", "stale")


def day_is_clean(pg: DaySummary | None, ch: DaySummary | None) -> bool:
    """Counts and checksums agree and nothing is duplicated (a day absent on both sides is clean)."""
    if pg is None or ch is None:
        return pg is None and ch is None
    return pg.rows == ch.rows == ch.distinct and ch.duplicates == 0 and pg.checksum == ch.checksum


DayDiff = dict[dt.date, tuple[DayResult, dict[str, list[str]]]]
_EPOCH = dt.date(1970, 1, 1)
_NULL_FINGERPRINT = -1  # fingerprints are 60-bit, never negative: a missing one differs from every other


def diff_rows(pg: pa.Table, ch: pa.Table) -> DayDiff:
    """Row-level comparison of two tables of the same schema (``FINGERPRINT_SCHEMA`` or ``ROW_SCHEMA``): per
    day, the counts and the (sorted) ids of each kind (``diff_fingerprints`` for fingerprints of a source
    with unique ids, else ``diff_joined``; both give the same answer)."""
    if pg.column_names == ch.column_names == [KEY, "day", FINGERPRINT]:
        found = diff_fingerprints(pg, ch)
        if found is not None:
            return found
    return diff_joined(pg, ch)


def diff_fingerprints(pg: pa.Table, ch: pa.Table) -> DayDiff | None:
    """``diff_joined`` for ``FINGERPRINT_SCHEMA`` tables, on integer codes instead of strings: both sides' ids
    are dictionary-encoded once, then every kind is an array look-up (set membership = a count per code,
    stale = the Postgres fingerprint of the code). None when Postgres repeats an id (then ``diff_joined``)."""
    n_pg = pg.num_rows
    encoded = pc.dictionary_encode(
        pa.chunked_array([*pg[KEY].chunks, *ch[KEY].chunks], type=pa.string()).combine_chunks()
    )
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = encoded.dictionary
    pg_codes, ch_codes = codes[:n_pg], codes[n_pg:]
    pg_count = np.bincount(pg_codes, minlength=len(names))
    if pg_count.size and pg_count.max() > 1:
        return None
    ch_count = np.bincount(ch_codes, minlength=len(names))
    pg_day, ch_day = _days(pg), _days(ch)
    pg_fp = pg[FINGERPRINT].fill_null(_NULL_FINGERPRINT).to_numpy()
    ch_fp = ch[FINGERPRINT].fill_null(_NULL_FINGERPRINT).to_numpy()
    fp_of = np.full(len(names), _NULL_FINGERPRINT, dtype=np.int64)
    fp_of[pg_codes] = pg_fp
    day_of = np.zeros(len(names), dtype=np.int64)
    day_of[pg_codes] = pg_day
    in_pg = pg_count[ch_codes] > 0
    dup = ch_count[ch_codes] > 1
    stale = in_pg & (ch_fp != fp_of[ch_codes])
    flagged = {  # (day, code) of every flagged row, on the day the kind is counted on
        "duplicates": (ch_day[dup], ch_codes[dup]),
        "missing": (pg_day[ch_count[pg_codes] == 0], pg_codes[ch_count[pg_codes] == 0]),
        "extra": (ch_day[~in_pg], ch_codes[~in_pg]),
        "stale": (day_of[ch_codes[stale]], ch_codes[stale]),
    }
    results: dict[dt.date, DayResult] = {}
    ids: dict[dt.date, dict[str, list[str]]] = defaultdict(lambda: {k: [] for k in KINDS})

    def result(d: int) -> DayResult:
        day = _EPOCH + dt.timedelta(days=int(d))
        return results.setdefault(day, DayResult(date=day))

    for d, n in zip(*np.unique(pg_day, return_counts=True), strict=True):
        result(d).pg_eligible = int(n)
    for d, n in zip(*np.unique(ch_day, return_counts=True), strict=True):
        result(d).ch_rows = result(d).ch_distinct = int(n)
    for d, n in zip(*np.unique(ch_day[dup], return_counts=True), strict=True):
        result(d).ch_distinct -= int(n)  # every copy of a duplicated conversation ...
    for kind in KINDS:
        days, kind_codes = flagged[kind]
        pairs = np.unique((days << 32) | kind_codes)  # distinct (day, conversation)
        days, kind_codes = pairs >> 32, pairs & 0xFFFFFFFF
        for d, n in zip(*np.unique(days, return_counts=True), strict=True):
            setattr(result(d), kind, int(n))
            if kind == "duplicates":
                result(d).ch_distinct += int(n)  # ... counted back once
        if pairs.size:
            listed = pa.table({"day": days, KEY: names.take(pa.array(kind_codes))}).sort_by(
                [("day", "ascending"), (KEY, "ascending")]
            )
            for d, cid in zip(listed["day"].to_pylist(), listed[KEY].to_pylist(), strict=True):
                ids[_EPOCH + dt.timedelta(days=d)][kind].append(cid)
    return {d: (r, ids[d]) for d, r in sorted(results.items())}


def _days(table: pa.Table) -> np.ndarray:
    """The ``day`` column (date32) as days since 1970-01-01."""
    return table["day"].combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)


def diff_joined(pg: pa.Table, ch: pa.Table) -> DayDiff:
    """Row-level comparison of two tables of the same schema (``FINGERPRINT_SCHEMA`` or ``ROW_SCHEMA``): per
    day, the counts and the (sorted) ids of each kind.

    No aggregation over strings: missing and extra are set membership, duplicates a count of ids, stale a
    column-by-column comparison (every column but the id and the day) of every ClickHouse row with its
    Postgres row (inner hash join). Missing and stale are counted on the Postgres start day, extra and
    duplicates on the ClickHouse one.
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
    for c in (c for c in pg.column_names if c not in (KEY, "day")):
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


def _rounds(drifted: list[dt.date]) -> list[DayRange]:
    """The row-level rounds: each contiguous run of drifted days in about equal pieces of at most
    ``MAX_DAYS_PER_FETCH`` days, and in at least ``FETCHES_AT_ONCE`` pieces when it is long enough."""
    rounds = []
    for run in contiguous_ranges(drifted):
        n = len(run)
        pieces = min(n, max(math.ceil(n / MAX_DAYS_PER_FETCH), FETCHES_AT_ONCE))
        size = math.ceil(n / pieces)
        rounds += [DayRange(run.days[i], run.days[min(i + size, n) - 1]) for i in range(0, n, size)]
    return rounds


def compare(
    postgres: ComparisonSide,
    clickhouse: CheckedSide,
    customer: str,
    days: DayRange,
    *,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    one_pass: bool = False,
) -> Comparison:
    """Compare one customer's days: per-day counts, drift kinds, a bounded sample and usecase distribution.

    :param postgres: the source of truth.
    :param clickhouse: the side checked against it; its ``database`` names the comparison.
    :param one_pass: read every day's fingerprints at once, without the per-day aggregates first: cheaper when
        most days have drifted (a backfill's "before"), dearer when most are clean.
    """
    began = time.monotonic()
    ch_lock = threading.Lock()  # one ClickHouse client: its queries go one at a time

    def on_clickhouse(call: Callable[..., Any]) -> Callable[..., Any]:
        def locked(*args: Any) -> Any:
            with ch_lock:
                return call(*args)

        return locked

    # usecases on their own connection beside the rest; every ClickHouse call holds ch_lock
    with ThreadPoolExecutor(max_workers=1) as side_pool:
        usecase_counts = side_pool.submit(
            lambda: (postgres.usecases(customer, days), on_clickhouse(clickhouse.usecases)(customer, days))
        )
        results: dict[dt.date, DayResult] = {}
        drifted: list[dt.date] = []
        pg_summary: dict[dt.date, DaySummary] = {}
        ch_summary: dict[dt.date, DaySummary] = {}
        if one_pass:
            drifted = list(days.days)
        else:
            pg_summary, ch_summary = both_sides(
                postgres.day_summaries, on_clickhouse(clickhouse.day_summaries), customer, days
            )
            for day in days.days:
                pg, ch = pg_summary.get(day), ch_summary.get(day)
                if day_is_clean(pg, ch):
                    n = pg.rows if pg else 0
                    results[day] = DayResult(date=day, pg_eligible=n, ch_rows=n, ch_distinct=n)
                else:
                    drifted.append(day)
        samples: dict[dt.date, dict[str, list[str]]] = {}
        drift_ids: dict[str, set[str]] = {"missing": set(), "extra": set()}

        def fetch(chunk: DayRange) -> tuple[pa.Table, pa.Table]:
            return both_sides(
                postgres.fingerprints_arrow, on_clickhouse(clickhouse.fingerprints_arrow), customer, chunk
            )

        with ThreadPoolExecutor(FETCHES_AT_ONCE) as fetches:
            chunks = _rounds(drifted)
            for chunk, fetched in zip(chunks, fetches.map(fetch, chunks), strict=True):
                rows = diff_rows(*fetched)
                del fetched
                for day in chunk.days:
                    result, ids = rows.get(day, (DayResult(date=day), {k: [] for k in KINDS}))
                    if result.rows_agree and not one_pass:
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
                    if sample_size and not result.rows_agree:
                        samples[day] = sample_ids(ids, sample_size)
            pg_usecases, ch_usecases = usecase_counts.result()
    _attach_samples(postgres, clickhouse, customer, results, samples)
    usecases: dict[str, dict[str, int]] = defaultdict(dict)
    for side, counts in ((postgres, pg_usecases), (clickhouse, ch_usecases)):
        for usecase, n in counts.items():
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
        unseen = [
            cid
            for cid, k in kinds.items()
            if "stale" in k and _labels_agree(pg_labels.get(cid), ch_labels.get(cid, []))
        ]
        if unseen:
            # the fingerprints differ, the labels do not: a fingerprint is wrong (or the data changed meanwhile)
            results[day].inconsistent = True
            log.warning("%s %s: stale by fingerprint, equal by labels: %s", customer, day, unseen[:5])
        results[day].sample = [
            {
                "conversation_id": cid,
                "kinds": k,
                "postgres": pg_labels.get(cid),
                "clickhouse": ch_labels.get(cid, []),
            }
            for cid, k in kinds.items()
        ]


_SAMPLE_COMPARED = (
    "agent_user_id",
    "usecase_id",
    "source",
    "conversation_start_time",
    "conversation_end_time",
)


def _labels_agree(pg: dict[str, Any] | None, ch: list[dict[str, Any]]) -> bool:
    """Whether every ClickHouse row of a sampled conversation shows Postgres' labels (compared columns, the
    times at the milliseconds both fingerprints see)."""
    return bool(pg and ch) and all(all(r[k] == pg[k] for k in _SAMPLE_COMPARED) for r in ch)
