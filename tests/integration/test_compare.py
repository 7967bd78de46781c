"""The comparison core on crafted data: each kind of drift, clean data, and a checksum equal across engines."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.compare import ClickHouseSide, PostgresSide, compare
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


def test_sample_is_bounded(pg, ch, clean):
    ch.command(f"ALTER TABLE {clean}.conversation_with_labels DELETE WHERE 1", settings={"mutations_sync": 2})
    result = run_compare(pg, ch, clean, sample_size=5)
    assert [d.missing for d in result.days] == [40, 40, 40]
    assert [len(d.sample) for d in result.days] == [5, 5, 5]


def test_missing_database_is_reported(pg, ch):
    side = ClickHouseSide(ch, "no_such_customer_us_east_1")
    assert side.exists() is False


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
