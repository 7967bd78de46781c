"""The comparison core on crafted data: each kind of drift, clean data, and a checksum equal across engines;
and on a simulated incident against an independent oracle (plain SQL reads, plain Python counting)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from typing import Any

import pytest
from label_backfill import sql
from label_backfill.compare import ClickHouseSide, PostgresSide, compare
from label_backfill.compare.diff import diff_fingerprints, diff_joined, diff_rows
from label_backfill.naming import DayRange

from tests.crafted import add_conversations, at, label_range, make_customer

pytestmark = pytest.mark.integration

DAYS = DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 3))


@pytest.fixture
def clean(pg, ch):
    db = make_customer(pg, ch, "cmp-co")
    convs = [
        (
            f"k{d}{i:03d}",
            i % 3,
            ["reservations", "cargo"][i % 2],
            ["voice", "chat"][i % 2],
            at(f"2026-02-0{d}", f"{8 + i % 12:02d}:{i % 60:02d}:00.{i:03d}"),
            at(f"2026-02-0{d}", f"{8 + i % 12:02d}:{i % 60:02d}:00.{i:03d}")
            + dt.timedelta(minutes=7, microseconds=456),
        )
        for d in (1, 2, 3)
        for i in range(40)
    ]
    add_conversations(pg, "cmp-co", convs)
    label_range(pg, ch, "cmp-co", DAYS.start, DAYS.end)
    return db


def run_compare(pg, ch, db, sample_size=20):
    return compare(PostgresSide(pg), ClickHouseSide(ch, db), "cmp-co", DAYS, sample_size=sample_size)


def test_clean_data_has_no_drift_and_equal_checksums(pg, ch, clean):
    result = run_compare(pg, ch, clean)
    assert result.ok and result.drifted_days == []
    assert [(d.pg_eligible, d.ch_rows, d.ch_distinct) for d in result.days] == [(40, 40, 40)] * 3
    pg_sum = PostgresSide(pg).day_summaries("cmp-co", DAYS)
    ch_sum = ClickHouseSide(ch, clean).day_summaries("cmp-co", DAYS)
    assert {d: s.checksum for d, s in pg_sum.items()} == {d: s.checksum for d, s in ch_sum.items()}
    assert all(s.checksum > 0 for s in pg_sum.values())
    pg_rows = PostgresSide(pg).rows_arrow("cmp-co", DAYS).sort_by("conversation_id")
    ch_rows = ClickHouseSide(ch, clean).rows_arrow("cmp-co", DAYS).sort_by("conversation_id")
    assert pg_rows.equals(ch_rows) and pg_rows.num_rows == 120  # same values, same types, both engines
    assert any(ms % 1000 for ms in pg_rows.column("start_ms").to_pylist())  # milliseconds survive both ways
    assert result.usecases == {
        "reservations": {"postgres": 60, "clickhouse": 60},
        "cargo": {"postgres": 60, "clickhouse": 60},
    }


def test_each_kind_of_drift_is_found_on_its_day(pg, ch, clean):
    with pg.cursor() as cur:
        cur.execute(
            "UPDATE conversations SET usecase_id = 'cco' WHERE conversation_id = 'k1000'"
        )  # stale, day 1
        cur.execute(
            "UPDATE conversations SET ended_at = NULL WHERE conversation_id = 'k2001'"
        )  # extra, day 2
    pg.commit()
    ch.command(
        f"ALTER TABLE {clean}.conversation_with_labels DELETE WHERE conversation_id = 'k3002'",
        settings={"mutations_sync": 2},
    )  # missing, day 3
    ch.command(
        f"INSERT INTO {clean}.conversation_with_labels SELECT customer_id, conversation_id, 'cmp-co-a9', "
        f"usecase_id, source, conversation_start_time, conversation_end_time, labeled_at "
        f"FROM {clean}.conversation_with_labels WHERE conversation_id = 'k3005'"
    )  # duplicate, day 3
    result = run_compare(pg, ch, clean)
    by_day = {d.date.day: d for d in result.days}
    assert (by_day[1].stale, by_day[1].missing, by_day[1].extra, by_day[1].duplicates) == (1, 0, 0, 0)
    assert (by_day[2].extra, by_day[2].pg_eligible, by_day[2].ch_rows) == (1, 39, 40)
    assert (by_day[3].missing, by_day[3].duplicates, by_day[3].stale) == (1, 1, 1)  # the copy's agent differs
    assert (by_day[3].ch_rows, by_day[3].ch_distinct) == (40, 39)
    assert result.drifted_days == [dt.date(2026, 2, d) for d in (1, 2, 3)]
    stale = by_day[1].sample[0]
    assert stale["conversation_id"] == "k1000" and stale["kinds"] == ["stale"]
    assert stale["postgres"]["usecase_id"] == "cco" and stale["clickhouse"][0]["usecase_id"] == "reservations"
    extra = by_day[2].sample[0]
    assert extra["postgres"]["eligible"] is False and extra["kinds"] == ["extra"]
    dup = next(s for s in by_day[3].sample if s["conversation_id"] == "k3005")
    assert sorted(dup["kinds"]) == ["duplicates", "stale"] and len(dup["clickhouse"]) == 2
    text = result.render_text()
    assert "DRIFT" in text and "k1000" in result.render_markdown()


def test_fingerprint_rows_and_one_pass_find_what_the_labels_find(pg, ch, clean):
    """The row-level diff reads fingerprints, not labels: on each kind of drift it must find exactly what a
    column-by-column diff of the labels finds; and the one-pass "before" the same as aggregates-first."""
    with pg.cursor() as cur:
        cur.execute("UPDATE conversations SET agent_user_id = 'cmp-co-a2' WHERE conversation_id = 'k1003'")
        cur.execute("UPDATE conversations SET ended_at = NULL WHERE conversation_id = 'k2001'")
    pg.commit()
    ch.command(
        f"ALTER TABLE {clean}.conversation_with_labels DELETE WHERE conversation_id IN ('k3002', 'k1009')",
        settings={"mutations_sync": 2},
    )
    ch.command(
        f"INSERT INTO {clean}.conversation_with_labels SELECT * FROM {clean}.conversation_with_labels "
        "WHERE conversation_id IN ('k3005', 'k2007')"
    )
    postgres, clickhouse = PostgresSide(pg), ClickHouseSide(ch, clean)
    by_labels = diff_joined(postgres.rows_arrow("cmp-co", DAYS), clickhouse.rows_arrow("cmp-co", DAYS))
    pg_fp, ch_fp = postgres.fingerprints_arrow("cmp-co", DAYS), clickhouse.fingerprints_arrow("cmp-co", DAYS)
    assert diff_fingerprints(pg_fp, ch_fp) == by_labels == diff_joined(pg_fp, ch_fp)
    assert {
        k: sorted(cid for _, ids in by_labels.values() for cid in ids[k]) for k in by_labels[DAYS.first][1]
    } == {
        "stale": ["k1003"],
        "missing": ["k1009", "k3002"],
        "extra": ["k2001"],
        "duplicates": ["k2007", "k3005"],
    }
    first = run_compare(pg, ch, clean).to_dict()
    once = compare(postgres, clickhouse, "cmp-co", DAYS, one_pass=True).to_dict()
    assert {**once, "seconds": 0} == {**first, "seconds": 0} and not once["ok"]


def test_checksums_that_differ_while_no_row_differs_are_an_inconsistency(pg, ch, clean, monkeypatch):
    """A fingerprint that leaves out a compared column (here ClickHouse's): never a clean day."""
    without_end = tuple(c for c in sql.COMPARED if c.name != "end_ms")
    fingerprint = sql.clickhouse_fingerprint
    monkeypatch.setattr(sql, "clickhouse_fingerprint", lambda columns=without_end: fingerprint(columns))
    pg_sum = PostgresSide(pg).day_summaries("cmp-co", DAYS)
    ch_sum = ClickHouseSide(ch, clean).day_summaries("cmp-co", DAYS)
    assert all(pg_sum[d].checksum != ch_sum[d].checksum for d in DAYS.days)
    result = run_compare(pg, ch, clean)
    assert [(d.pg_eligible, d.ch_rows, d.ch_distinct) for d in result.days] == [(40, 40, 40)] * 3
    assert [d.ok for d in result.days] == [False] * 3
    assert [d.inconsistent for d in result.days] == [True] * 3
    assert not result.ok and result.drifted_days == list(DAYS.days)  # the drift check's drifted days
    document = result.to_dict()
    assert [d["inconsistent"] for d in document["days"]] == [True] * 3
    assert document["totals"]["inconsistent"] == 3
    assert "INCONSISTENT" in result.render_text() and "INCONSISTENT" in result.render_markdown()


def test_sample_is_bounded(pg, ch, clean):
    ch.command(f"ALTER TABLE {clean}.conversation_with_labels DELETE WHERE 1", settings={"mutations_sync": 2})
    result = run_compare(pg, ch, clean, sample_size=5)
    assert [d.missing for d in result.days] == [40, 40, 40]
    assert [len(d.sample) for d in result.days] == [5, 5, 5]


def test_missing_database_is_reported(pg, ch):
    """A missing database is an error, never an empty side that could compare as 'no data' or clean."""
    side = ClickHouseSide(ch, "no_such_customer_us_east_1")
    assert side.table.exists() is False
    days = DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 2))
    with pytest.raises(Exception, match="no_such_customer_us_east_1"):
        compare(PostgresSide(pg), side, "alaska-air", days)


def test_tasks_read_drifted_rows_with_the_connections_credentials(stack, clean, monkeypatch):
    """psycopg's conninfo drops the password, so the ADBC row reads must use the Airflow connection's."""
    import json

    from label_backfill.hooks import postgres_side

    conn = json.loads(stack[0].airflow_env(stack[1])["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])
    monkeypatch.setenv("AIRFLOW_CONN_POSTGRES_CONVERSATIONS", json.dumps({**conn, "password": "s3cret-pw"}))
    with postgres_side() as postgres:
        assert "password=s3cret-pw" in postgres.bulk_dsn
        assert "s3cret-pw" not in postgres.connection.info.dsn  # what the fallback would have used
        assert postgres.rows_arrow("cmp-co", DAYS).num_rows == 120


@pytest.mark.parametrize(
    ("cid", "correction"),
    [
        ("k2010", "ended_at = ended_at + interval '3 minutes'"),  # 18:17 -> 18:20, same day
        ("k1007", "started_at = started_at - interval '1 hour'"),  # 15:07 -> 14:07, same day
    ],
)
def test_a_corrected_time_makes_a_labeled_conversation_stale(pg, ch, clean, cid, correction):
    """Only a time changes, within the start day: both the checksum and the row comparison must see it."""
    day = dt.date(2026, 2, int(cid[1]))
    with pg.cursor() as cur:
        cur.execute(
            f"UPDATE conversations SET {correction} WHERE conversation_id = %s "
            "RETURNING (started_at AT TIME ZONE 'UTC')::date",
            (cid,),
        )
        assert cur.fetchone()[0] == day
    pg.commit()
    postgres, clickhouse = PostgresSide(pg), ClickHouseSide(ch, clean)

    pg_sum, ch_sum = postgres.day_summaries("cmp-co", DAYS), clickhouse.day_summaries("cmp-co", DAYS)
    assert [d for d in DAYS.days if pg_sum[d].checksum != ch_sum[d].checksum] == [day]
    assert {(s.rows, s.distinct, s.duplicates) for s in (*pg_sum.values(), *ch_sum.values())} == {(40, 40, 0)}

    rows = diff_rows(postgres.rows_arrow("cmp-co", DAYS), clickhouse.rows_arrow("cmp-co", DAYS))
    assert {d: ids for d, (_, ids) in rows.items() if any(ids.values())} == {
        day: {"duplicates": [], "missing": [], "extra": [], "stale": [cid]}
    }

    result = run_compare(pg, ch, clean)
    assert [
        (d.date, d.pg_eligible, d.ch_rows, d.ch_distinct, d.stale, d.missing, d.extra, d.duplicates)
        for d in result.days
    ] == [(d, 40, 40, 40, int(d == day), 0, 0, 0) for d in DAYS.days]
    assert result.drifted_days == [day] and not result.ok
    (sample,) = next(d for d in result.days if d.date == day).sample
    assert sample["conversation_id"] == cid and sample["kinds"] == ["stale"]


def _ms(value: dt.datetime) -> int:
    if value.tzinfo is None:  # ClickHouse hands back naive UTC
        value = value.replace(tzinfo=dt.UTC)
    return (value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def oracle(pg: Any, ch: Any, customer: str, database: str, days: DayRange) -> dict[dt.date, dict[str, int]]:
    """Per day counts computed without the package: plain SQL reads, plain Python sets and counters.

    The contract from the README: eligible = the customer's, ended, voice or chat, agent a known non-dev
    user; missing and stale count on the Postgres start day, extra and duplicates on the ClickHouse one.
    """
    with pg.cursor() as cur:
        cur.execute(
            "SELECT c.conversation_id, c.agent_user_id, c.usecase_id, c.source, c.started_at, c.ended_at "
            "FROM conversations c JOIN users u ON u.user_id = c.agent_user_id "
            "WHERE c.customer_id = %s AND c.ended_at IS NOT NULL AND c.source IN ('voice', 'chat') "
            "AND NOT u.is_dev_user AND c.started_at >= %s AND c.started_at < %s",
            (customer, days.start, days.end),
        )
        source = {cid: (agent, usecase, src, _ms(s), _ms(e)) for cid, agent, usecase, src, s, e in cur}
    pg.rollback()
    target = ch.query(
        "SELECT conversation_id, agent_user_id, usecase_id, toString(source), conversation_start_time, "
        f"conversation_end_time FROM {database}.conversation_with_labels WHERE customer_id = {{c:String}} "
        "AND conversation_start_time >= {s:DateTime64(3, 'UTC')} AND conversation_start_time < {e:DateTime64(3, 'UTC')}",
        parameters={"c": customer, "s": days.start, "e": days.end},
    ).result_rows
    labels = [(cid, (agent, usecase, src, _ms(s), _ms(e))) for cid, agent, usecase, src, s, e in target]
    copies = Counter(cid for cid, _ in labels)

    def day_of(ms: int) -> dt.date:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()

    out: dict[dt.date, dict[str, int]] = {d: defaultdict(int) for d in days.days}
    sets: dict[dt.date, dict[str, set[str]]] = {d: defaultdict(set) for d in days.days}
    for cid, row in source.items():
        out[day_of(row[3])]["pg_eligible"] += 1
        if cid not in copies:
            sets[day_of(row[3])]["missing"].add(cid)
    for cid, row in labels:
        day = day_of(row[3])
        out[day]["ch_rows"] += 1
        sets[day]["distinct"].add(cid)
        if copies[cid] > 1:
            sets[day]["duplicates"].add(cid)
        if cid not in source:
            sets[day]["extra"].add(cid)
        elif row != source[cid]:
            sets[day_of(source[cid][3])]["stale"].add(cid)
    for day, kinds in sets.items():
        out[day]["ch_distinct"] = len(kinds["distinct"])
        for kind in ("duplicates", "missing", "extra", "stale"):
            out[day][kind] = len(kinds[kind])
    return {d: dict(counts) for d, counts in out.items()}


def test_comparison_agrees_with_an_independent_oracle_on_a_simulated_incident(pg, ch):
    from label_backfill.dev.simulate import simulate

    incident = simulate(pg, ch, scale_name="small", seed=7)
    days = DayRange(incident.rerun_day - dt.timedelta(days=2), incident.rerun_day + dt.timedelta(days=2))
    expected = oracle(pg, ch, "alaska-air", "alaska_air_us_east_1", days)
    result = compare(
        PostgresSide(pg), ClickHouseSide(ch, "alaska_air_us_east_1"), "alaska-air", days, sample_size=0
    )
    columns = ("pg_eligible", "ch_rows", "ch_distinct", "duplicates", "missing", "extra", "stale")
    assert {d.date: {c: getattr(d, c) for c in columns} for d in result.days} == expected
    totals = {c: sum(day[c] for day in expected.values()) for c in columns}
    assert all(totals[k] > 0 for k in ("duplicates", "missing", "extra", "stale")), totals  # a real test
