"""The row-level diff of fingerprints (``diff_fingerprints``, on dictionary codes) gives exactly what the join
(``diff_joined``) gives, whatever the drift: missing, extra, stale, a start day moved, copies with and without
a different fingerprint, and two different ids that share a fingerprint."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest
from label_backfill.compare.dialects import FINGERPRINT_SCHEMA
from label_backfill.compare.diff import diff_fingerprints, diff_joined

pytestmark = pytest.mark.unit

DAY0 = dt.date(2026, 1, 1)


def table(rows: list[tuple[str, int, int | None]]) -> pa.Table:
    ids, days, fps = zip(*rows, strict=True) if rows else ((), (), ())
    return pa.table(
        [
            pa.array(ids, pa.string()),
            pa.array([DAY0 + dt.timedelta(days=d) for d in days], pa.date32()),
            pa.array(fps, pa.int64()),
        ],
        schema=FINGERPRINT_SCHEMA,
    )


def incident(seed: int, nulls: bool = False) -> tuple[pa.Table, pa.Table]:
    """Postgres rows and a drifted ClickHouse copy of them, every kind of drift at random."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 300))
    pg = [(f"c{i:05d}", int(rng.integers(0, 7)), int(rng.integers(0, 2**60))) for i in range(n)]
    ch = []
    for cid, day, fp in pg:
        roll = rng.random()
        if roll < 0.05:
            continue  # missing
        if roll < 0.10:
            ch.append((cid, day, fp + 1))  # stale
        elif roll < 0.13:
            ch.append((cid, (day + 1) % 7, fp + 2))  # its start day moved
        elif roll < 0.16:
            ch += [(cid, day, fp), (cid, day, fp)]  # an exact copy
        elif roll < 0.19:
            ch += [(cid, day, fp), (cid, day, fp + 3)]  # a copy with older labels
        elif roll < 0.21:
            ch += [(cid, day, fp + 1), (cid, (day + 2) % 7, fp + 4)]  # both copies stale, on two days
        else:
            ch.append((cid, day, fp))
    ch += [
        (f"x{i:03d}", int(rng.integers(0, 7)), int(rng.integers(0, 2**60))) for i in range(rng.integers(0, 5))
    ]
    if nulls and pg:
        for _ in range(3):
            i = int(rng.integers(0, len(pg)))
            pg[i] = (pg[i][0], pg[i][1], None)
        if ch:
            i = int(rng.integers(0, len(ch)))
            ch[i] = (ch[i][0], ch[i][1], None)
    order = rng.permutation(len(ch))
    return table(pg), table([ch[i] for i in order])


@pytest.mark.parametrize("seed", range(40))
def test_the_diff_on_codes_finds_what_the_join_finds(seed):
    pg, ch = incident(seed)
    assert diff_fingerprints(pg, ch) == diff_joined(pg, ch)


@pytest.mark.parametrize("seed", range(10))
def test_a_missing_fingerprint_differs_from_every_other(seed):
    pg, ch = incident(seed, nulls=True)
    found = diff_fingerprints(pg, ch)
    nulls = set(pg.filter(pg["fingerprint"].is_null())["conversation_id"].to_pylist())
    present = set(ch["conversation_id"].to_pylist())
    stale = {cid for _, ids in found.values() for cid in ids["stale"]}
    assert nulls & present <= stale  # in ClickHouse with a fingerprint Postgres lacks: never equal


def test_two_ids_sharing_a_fingerprint_are_not_taken_for_one():
    """The diff matches ids, never fingerprints alone."""
    pg = table([("a", 0, 7), ("b", 0, 8)])
    ch = table([("b", 0, 7), ("b", 0, 8)])  # b's copy carries a's fingerprint: a coincidence, not a match
    found = diff_fingerprints(pg, ch)
    assert found == diff_joined(pg, ch)
    result, ids = found[DAY0]
    assert (result.missing, result.duplicates) == (1, 1)
    assert ids["missing"] == ["a"]


def test_rows_that_all_agree_are_counted_on_their_days():
    pg = table([("a", 0, 1), ("b", 1, 2), ("c", 1, 3)])
    found = diff_fingerprints(pg, table([("c", 1, 3), ("a", 0, 1), ("b", 1, 2)]))
    assert {d: (r.pg_eligible, r.ch_rows, r.ch_distinct, r.rows_agree) for d, (r, _) in found.items()} == {
        DAY0: (1, 1, 1, True),
        DAY0 + dt.timedelta(days=1): (2, 2, 2, True),
    }


def test_postgres_repeating_an_id_is_left_to_the_join():
    pg = table([("a", 0, 1), ("a", 0, 1)])
    assert diff_fingerprints(pg, table([("a", 0, 1)])) is None
