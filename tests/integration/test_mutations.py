"""Range delete, mutation tracking and the deferred trigger on the real ClickHouse engine."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from label_backfill.clickhouse import LabelTable, MutationFailed
from label_backfill.naming import DayRange
from label_backfill.triggers import ClickHouseMutationTrigger

from tests.crafted import add_conversations, at, label_range, make_customer

pytestmark = pytest.mark.integration


@pytest.fixture
def table(pg, ch):
    db = make_customer(pg, ch, "mut-co")
    add_conversations(
        pg,
        "mut-co",
        [
            (
                f"m{d}{i}",
                i % 3,
                "cco",
                "voice",
                at(f"2026-02-0{d}", "23:59:59.999"),
                at(f"2026-02-0{d + 1}", "00:09:00"),
            )
            for d in (1, 2, 3)
            for i in range(20)
        ],
    )
    label_range(pg, ch, "mut-co", at("2026-02-01", "00:00:00"), at("2026-02-04", "00:00:00"))
    return LabelTable(ch, db)


def count_by_day(table):
    rows = table.client.query(
        f"SELECT toDate(conversation_start_time), count() FROM {table.database}."
        "conversation_with_labels GROUP BY 1 ORDER BY 1"
    ).result_rows
    return {d.day: n for d, n in rows}


def test_delete_range_removes_exactly_its_start_days(table):
    watched = table.delete_range("mut-co", DayRange(dt.date(2026, 2, 2), dt.date(2026, 2, 2)))
    assert len(watched) == 1 and watched[0][1].startswith("mutation_")
    table.wait(watched, timeout=30)
    assert count_by_day(table) == {1: 20, 3: 20}  # Feb 1 rows end on Feb 2 but start on Feb 1: kept
    assert table.delete_range(
        "other-co", DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 3))
    ) and count_by_day(table) == {1: 20, 3: 20}  # another customer's delete touches nothing here


def test_trigger_reports_done_and_failed(table):
    watched = table.delete_range("mut-co", DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 1)))
    trigger = ClickHouseMutationTrigger(
        "clickhouse_conversations", table.database, None, [list(m) for m in watched], poll_interval=0.1
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "label_backfill.triggers.ClickHouseMutationTrigger"
    rebuilt = ClickHouseMutationTrigger(**kwargs)

    async def first_event(t):
        async for event in t.run():
            return event.payload

    assert asyncio.run(first_event(rebuilt)) == {"status": "done", "reason": ""}

    table.client.command(
        f"ALTER TABLE {table.database}.conversation_with_labels UPDATE usecase_id = "
        "toString(throwIf(1, 'replica out of disk')) WHERE 1",
        settings={"mutations_sync": 0},
    )
    try:
        ours = table.delete_range("mut-co", DayRange(dt.date(2026, 2, 3), dt.date(2026, 2, 3)))
        event = asyncio.run(
            first_event(
                ClickHouseMutationTrigger(
                    "clickhouse_conversations",
                    table.database,
                    None,
                    [list(m) for m in ours],
                    poll_interval=0.1,
                )
            )
        )
        assert event["status"] == "failed" and "replica out of disk" in event["reason"]
        with pytest.raises(MutationFailed, match="replica out of disk"):
            table.wait(ours, timeout=30)
    finally:
        table.client.command(f"KILL MUTATION WHERE database = '{table.database}'")
