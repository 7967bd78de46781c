"""The drift check's planning: lookback window, customer selection, repair ranges and budget, problems."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill import drift
from label_backfill.naming import InvalidInput

pytestmark = pytest.mark.unit


def result(customer, status, days=()):
    return drift.customer_result(customer, status, {"drifted_days": list(days), "days": [], "totals": {}})


def test_lookback_ends_the_day_before_the_logical_date():
    days = drift.lookback(dt.date(2026, 11, 24), 7)
    assert (days.first, days.last) == (dt.date(2026, 11, 17), dt.date(2026, 11, 23))
    with pytest.raises(InvalidInput, match="lookback_days"):
        drift.lookback(dt.date(2026, 11, 24), 0)


def test_customer_selection():
    profiles = [("b-air", "us-east-1"), ("a-air", "eu-west-1")]
    assert drift.select_customers([], profiles) == ["a-air", "b-air"]
    assert drift.select_customers(["b-air", "b-air"], profiles) == ["b-air"]
    with pytest.raises(InvalidInput, match="customers"):
        drift.select_customers(["b-air; drop"], profiles)


def test_repairs_follow_contiguous_ranges_within_the_budget():
    days = ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-07", "2026-02-09", "2026-02-10"]
    plans = drift.plan_repairs(
        [result("a-air", "drift", days), result("b-air", "clean")], 4, "scheduled__2026-02-15"
    )
    assert [(p["conf"]["start_date"], p["conf"]["end_date"]) for p in plans] == [
        ("2026-02-01", "2026-02-03"),
        ("2026-02-07", "2026-02-07"),
    ]
    assert plans[0]["trigger_run_id"] == "drift_repair__a-air__2026-02-01__2026-02-03__scheduled__2026-02-15"
    assert plans == drift.plan_repairs(
        [result("a-air", "drift", days)], 4, "scheduled__2026-02-15"
    )  # deterministic
    capped = drift.plan_repairs([result("a-air", "drift", days)], 2, "n")
    assert [(p["conf"]["start_date"], p["conf"]["end_date"]) for p in capped] == [
        ("2026-02-01", "2026-02-02")
    ]


def test_problems_name_customers_and_days():
    results = [
        result("a-air", "drift", ["2026-02-01", "2026-02-02", "2026-02-05"]),
        result("b-air", "clean"),
        drift.customer_result("c-air", drift.STATUS_NO_DATABASE, error="no table c_air.x"),
    ]
    assert drift.problems(results) == [
        "a-air: drift on 2026-02-01..2026-02-02, 2026-02-05..2026-02-05",
        "c-air: missing_database (no table c_air.x)",
    ]
    assert drift.problems([result("b-air", "clean")]) == []
