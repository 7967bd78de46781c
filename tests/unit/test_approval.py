"""The approval page's text, built from validate's and preflight's XComs (no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.approval import approval_request
from label_backfill.backfill import Boundary, validate_params
from label_backfill.compare.report import Comparison, DayResult

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 3, 1)
PARAMS = {
    "customer": "alaska-air",
    "start_date": "2026-02-02",
    "end_date": "2026-02-04",
    "max_days": 62,
    "max_delete_ratio": 2.0,
    "max_parallel_days": 4,
    "sample_size": 20,
}


def _plan(**params) -> dict:
    plan = validate_params({**PARAMS, **params}, TODAY).to_dict()
    return {**plan, "region": "us-east-1", "database": "alaska_air_us_east_1"}


def _found(boundary: Boundary | None = None, days: list[DayResult] | None = None) -> dict:
    days = days or [
        DayResult(dt.date(2026, 2, 2), 100, 130, 110, duplicates=20, missing=2, extra=12, stale=9),
        DayResult(dt.date(2026, 2, 3), 0, 40, 40, extra=40),
        DayResult(dt.date(2026, 2, 4), 90, 90, 90),
    ]
    before = Comparison("alaska-air", "alaska_air_us_east_1", days[0].date, days[-1].date, days)
    boundary = boundary or Boundary(delete_ids=[], moved_out={}, outside_days=[])
    return {
        "before": before.to_dict(),
        "delete_ids": boundary.delete_ids,
        "boundary": boundary.to_dict(),
        "neighbours": {"2026-02-01": [10, 99], "2026-02-05": [11, 98]},
        "skipped_neighbours": [],
    }


def test_require_approval_is_off_unless_asked_and_must_be_a_boolean():
    from label_backfill.naming import InvalidInput

    assert _plan()["require_approval"] is False  # a conf without the key (CLI, demo, drift repairs)
    assert _plan(require_approval=True)["require_approval"] is True
    with pytest.raises(InvalidInput, match="require_approval: 'yes' must be true or false"):
        validate_params({**PARAMS, "require_approval": "yes"}, TODAY)


def test_the_page_shows_customer_days_rows_to_delete_and_rewrite_the_drift_and_the_guard():
    edge = Boundary(delete_ids=["c1", "c2"], moved_out={}, outside_days=["2026-01-30"])
    subject, body = approval_request(_plan(allow_empty_source=True), _found(edge), 86400)
    assert (
        subject
        == "Delete 260 ClickHouse rows of alaska-air 2026-02-02..2026-02-04 and rewrite 190 from Postgres?"
    )
    assert "**Customer** `alaska-air` (ClickHouse database `alaska_air_us_east_1`)" in body
    assert "**Days** 2026-02-02..2026-02-04: 3 UTC day(s)" in body
    assert "| ClickHouse rows to delete (the range's rows) | 260 |" in body
    assert "| conversations also deleted outside the range (every row of each) | 2 (on 2026-01-30) |" in body
    assert "| Postgres rows to rewrite (eligible conversations) | 190 |" in body
    for line in ("| duplicate conversations | 20 | 0 |", "| stale labels | 9 | 0 |", "| extra | 52 | 0 |"):
        assert line in body
    assert "| 2026-02-03 | 0 | 40 | 40 | 0 | 0 | 0 | 40 | DRIFT |" in body
    assert "worst day 2026-02-02: 12 of 110 (10.9%); refused above 50% per day (max_delete_ratio 2.0)" in body
    assert (
        "Empty source: Postgres has no eligible conversation on 1 day(s) where ClickHouse holds rows: "
        in body
    )
    assert "2026-02-03 (40 rows). Allowed by allow_empty_source=true" in body
    assert "Edge: 2 conversation(s) of this range are also stored outside it (on 2026-01-30)" in body
    assert "Neighbours: 2026-02-01, 2026-02-05 fingerprinted now" in body
    assert "No answer within 24 h counts as Reject." in body


def test_a_long_range_lists_the_first_days_and_says_how_many_more():
    days = [DayResult(dt.date(2026, 1, 1) + dt.timedelta(days=i), 10, 10, 10) for i in range(40)]
    plan = _plan(start_date="2026-01-01", end_date="2026-02-09")
    _, body = approval_request(plan, _found(days=days), 3600)
    assert "| 2026-01-31 |" in body and "| 2026-02-01 |" not in body
    assert "... 9 more day(s) in the preflight's log and the run's report." in body
    assert "Loss: none" in body and "Edge: no conversation" in body and "within 1 h" in body
