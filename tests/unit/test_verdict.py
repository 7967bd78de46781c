"""The backfill's verdict: every day that is not checked and equal is named in a problem."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.backfill import comparison_from_dict, verdict
from label_backfill.compare.report import Comparison, DayResult

pytestmark = pytest.mark.unit

DAY1, DAY2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)


def _after(*days: DayResult) -> Comparison:
    return Comparison("alaska-air", "alaska_air_us_east_1", days[0].date, days[-1].date, list(days))


def test_a_stale_only_day_is_a_problem_naming_the_day():
    """Counts equal, nothing missing, extra or duplicated: only labels differ."""
    after = _after(DayResult(DAY1, 10, 10, 10), DayResult(DAY2, 10, 10, 10, stale=3))
    assert verdict(after, []) == ["stale remain on 2026-01-02 (3)"]


def test_an_exact_range_has_no_problem():
    assert verdict(_after(DayResult(DAY1, 10, 10, 10), DayResult(DAY2, 0, 0, 0)), []) == []


def test_an_inconsistent_day_is_a_problem_naming_the_day():
    """Checksums differed but no row did: counts are equal and no kind is counted, yet it is not clean."""
    after = _after(DayResult(DAY1, 10, 10, 10), DayResult(DAY2, 10, 10, 10, inconsistent=True))
    assert not after.ok and after.drifted_days == [DAY2]
    (problem,) = verdict(after, [])
    assert "2026-01-02" in problem and "inconsistent" in problem and "counts differ" not in problem


def test_an_inconsistent_day_survives_the_round_trip_between_tasks():
    """preflight hands its comparison to verify as JSON: the flag must not be lost on the way."""
    before = _after(DayResult(DAY1, 10, 10, 10), DayResult(DAY2, 10, 10, 10, inconsistent=True))
    again = comparison_from_dict(before.to_dict())
    assert [d.inconsistent for d in again.days] == [False, True] and not again.ok
