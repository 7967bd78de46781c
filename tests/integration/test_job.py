"""The reference label-conversations job on a real Postgres server and the real ClickHouse engine."""

from __future__ import annotations

import datetime as dt

import pytest
from label_conversations import JobConfig, JobConfigError, connect_postgres, run
from label_conversations.job import run_from_env

from tests.crafted import add_conversations, at, label_range, make_customer

pytestmark = pytest.mark.integration


def rows(ch, database):
    return ch.query(
        f"SELECT conversation_id, agent_user_id, usecase_id, toString(source), conversation_start_time, "
        f"conversation_end_time FROM {database}.conversation_with_labels ORDER BY 1"
    ).result_rows


@pytest.fixture
def job_customer(pg, ch):
    db = make_customer(pg, ch, "job-co", dev_agents=(2,))
    add_conversations(
        pg,
        "job-co",
        [
            (
                "c1",
                0,
                "reservations",
                "voice",
                at("2026-02-01", "00:00:00"),
                at("2026-02-01", "00:10:00.123"),
            ),
            (
                "c2",
                1,
                "cargo",
                "chat",
                at("2026-02-01", "23:59:59.999"),
                at("2026-02-02", "00:20:00"),
            ),  # crosses midnight
            ("c3", 0, "cco", "email", at("2026-02-01"), at("2026-02-01", "13:00:00")),  # not voice/chat
            ("c4", 2, "cco", "voice", at("2026-02-01"), at("2026-02-01", "13:00:00")),  # dev agent
            ("c5", 0, "cco", "voice", at("2026-02-01"), None),  # still open
            (
                "c6",
                1,
                "chat",
                "voice",
                at("2026-02-02", "00:00:00"),
                at("2026-02-02", "00:05:00"),
            ),  # next day
            ("c7", 9, "chat", "voice", at("2026-02-01"), at("2026-02-01", "12:05:00")),  # agent not in users
        ],
    )
    return db


def test_range_mode_writes_exactly_the_eligible_set(pg, ch, job_customer):
    written = label_range(pg, ch, "job-co", at("2026-02-01", "00:00:00"), at("2026-02-02", "00:00:00"))
    assert written == 2
    assert rows(ch, job_customer) == [
        (
            "c1",
            "job-co-a0",
            "reservations",
            "voice",
            dt.datetime(2026, 2, 1, 0, 0),
            dt.datetime(2026, 2, 1, 0, 10, 0, 123000),
        ),
        (
            "c2",
            "job-co-a1",
            "cargo",
            "chat",
            dt.datetime(2026, 2, 1, 23, 59, 59, 999000),
            dt.datetime(2026, 2, 2, 0, 20),
        ),
    ]


def test_a_range_with_nothing_eligible_writes_nothing(pg, ch, job_customer):
    assert label_range(pg, ch, "job-co", at("2026-03-01", "00:00:00"), at("2026-03-02", "00:00:00")) == 0
    assert rows(ch, job_customer) == []


def test_watermark_mode_never_revisits(pg, ch, job_customer):
    day1_end = at("2026-02-02", "00:00:00")
    job_pg = connect_postgres(pg.info.dsn)
    first = run(JobConfig(customer="job-co", now=day1_end), job_pg, ch)
    assert first.rows == 2
    with pg.cursor() as cur:  # production re-assigns c1 after it was labeled
        cur.execute("UPDATE conversations SET agent_user_id = 'job-co-a1' WHERE conversation_id = 'c1'")
    pg.commit()
    second = run(JobConfig(customer="job-co", now=at("2026-02-03", "00:00:00")), job_pg, ch)
    assert second.rows == 1  # only c6, started after the watermark
    labeled = {r[0]: r[1] for r in rows(ch, job_customer)}
    assert labeled == {"c1": "job-co-a0", "c2": "job-co-a1", "c6": "job-co-a1"}  # c1 stays stale


def test_insert_deduplication_hazard_is_reproduced_and_the_job_is_safe(pg, ch):
    db = make_customer(pg, ch, "dedup-co", dedup_window=100)
    add_conversations(
        pg,
        "dedup-co",
        [(f"d{i}", i % 3, "cco", "voice", at("2026-02-01"), at("2026-02-01", "12:30:00")) for i in range(50)],
    )
    table = f"{db}.conversation_with_labels"
    # The hazard: an identical block re-inserted after a delete is silently dropped.
    block = ch.query(f"SELECT * FROM {table}").result_rows
    assert block == []
    frozen = lambda: dt.datetime(2026, 2, 19, 1, 0, tzinfo=dt.UTC)  # noqa: E731 same labeled_at every run
    data = [["dedup-co", "x1", "a", "u", "voice", at("2026-02-01"), at("2026-02-01"), frozen()]]
    columns = [
        "customer_id",
        "conversation_id",
        "agent_user_id",
        "usecase_id",
        "source",
        "conversation_start_time",
        "conversation_end_time",
        "labeled_at",
    ]
    ch.insert("conversation_with_labels", data, database=db, column_names=columns)
    ch.command(f"ALTER TABLE {table} DELETE WHERE 1", settings={"mutations_sync": 2})
    ch.insert("conversation_with_labels", data, database=db, column_names=columns)
    assert ch.command(f"SELECT count() FROM {table}") == 0, "the hazard did not reproduce"

    # The job, run twice with the same clock (identical blocks) and a delete in between, loses nothing.
    start, end = at("2026-02-01", "00:00:00"), at("2026-02-02", "00:00:00")
    assert label_range(pg, ch, "dedup-co", start, end, clock=frozen) == 50
    ch.command(f"ALTER TABLE {table} DELETE WHERE 1", settings={"mutations_sync": 2})
    assert label_range(pg, ch, "dedup-co", start, end, clock=frozen) == 50
    assert ch.command(f"SELECT count() FROM {table}") == 50


def test_streams_in_blocks_and_stays_exact(pg, ch):
    db = make_customer(pg, ch, "stream-co")
    add_conversations(
        pg,
        "stream-co",
        [
            (
                f"s{i:05d}",
                i % 3,
                "reservations",
                "chat",
                at("2026-02-01", f"{10 + i % 10:02d}:00:00"),
                at("2026-02-01", f"{10 + i % 10:02d}:30:00"),
            )
            for i in range(5000)
        ],
    )
    config = JobConfig(
        customer="stream-co",
        range_start=at("2026-02-01", "00:00:00"),
        range_end=at("2026-02-02", "00:00:00"),
        slice_hours=1,
    )
    with connect_postgres(pg.info.dsn) as job_pg:
        result = run(config, job_pg, ch)
    assert result.rows == 5000 and result.customers[0].blocks == 10  # 10:00..19:59, one block per hour
    counts = ch.query(
        f"SELECT uniqExact(conversation_id), count() FROM {db}.conversation_with_labels"
    ).result_rows
    assert counts == [(5000, 5000)]


def test_env_contract_errors_are_clear(stack):
    with pytest.raises(JobConfigError, match="set both"):
        JobConfig.from_env(
            {"LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START": "2026-02-01T00:00:00Z"}
        )
    with pytest.raises(JobConfigError, match="RANGE_START: '2026-02-01' has no UTC offset"):
        JobConfig.from_env(
            {
                "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START": "2026-02-01",
                "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END": "tomorrow",
            }
        )
    with pytest.raises(JobConfigError, match="LABEL_CONVERSATIONS_POSTGRES_DSN"):
        run_from_env({})


def test_unknown_customer_filter_fails(pg, ch):
    with pytest.raises(JobConfigError, match="no profile"):
        with connect_postgres(pg.info.dsn) as job_pg:
            run(JobConfig(customer="nobody"), job_pg, ch)
