"""Parameter validation, guards and verdicts: pure logic, no database."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.backfill import BackfillPlan, failed_days, guard, validate_params, verdict
from label_backfill.compare.report import Comparison, DayResult
from label_backfill.naming import (
    DayRange,
    InvalidInput,
    contiguous_ranges,
    database_name,
    validate_identifier,
)

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 11, 24)
GOOD = {
    "customer": "alaska-air",
    "start_date": "2026-01-01",
    "end_date": "2026-02-18",
    "dry_run": False,
    "max_parallel_days": 4,
    "max_days": 62,
    "allow_empty_source": False,
    "max_delete_ratio": 2.0,
    "sample_size": 20,
}


def test_good_params_make_a_plan():
    plan = validate_params(GOOD, TODAY)
    assert (plan.customer, plan.start_date, plan.end_date) == ("alaska-air", "2026-01-01", "2026-02-18")
    assert len(plan.days) == 49 and plan.days.start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert plan.days.end == dt.datetime(2026, 2, 19, tzinfo=dt.UTC)  # end date is inclusive


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"customer": "Alaska Air"}, "customer"),
        ({"customer": "alaska-air'; DROP TABLE x; --"}, "customer"),
        ({"customer": "-alaska"}, "customer"),
        ({"customer": None}, "customer"),
        ({"start_date": "2026-1-1"}, "start_date"),
        ({"start_date": "2026-02-30"}, "start_date"),
        ({"end_date": "yesterday"}, "end_date"),
        ({"start_date": "2026-02-18", "end_date": "2026-01-01"}, "end_date"),
        ({"start_date": "2026-12-01", "end_date": "2026-12-02"}, "end_date"),  # future
        ({"start_date": "2025-01-01", "end_date": "2025-12-31"}, "end_date"),  # over max_days
        ({"max_parallel_days": 0}, "max_parallel_days"),
        ({"max_parallel_days": True}, "max_parallel_days"),
        ({"max_delete_ratio": 0.5}, "max_delete_ratio"),
        ({"dry_run": "yes"}, "dry_run"),
    ],
)
def test_bad_params_are_rejected_naming_the_param(change, param):
    with pytest.raises(InvalidInput) as err:
        validate_params({**GOOD, **change}, TODAY)
    assert str(err.value).startswith(f"{param}:")


def test_end_date_today_is_refused_as_unfinished():
    """A short range ending today: only the finished-day rule can refuse it (not max_days)."""
    params = {**GOOD, "start_date": "2026-11-20", "end_date": "2026-11-24"}
    with pytest.raises(InvalidInput, match=r"^end_date: 2026-11-24 is not a finished UTC day"):
        validate_params(params, TODAY)
    assert validate_params({**params, "end_date": "2026-11-23"}, TODAY).end_date == "2026-11-23"


def test_database_name_and_identifiers():
    assert database_name("alaska-air", "us-east-1") == "alaska_air_us_east_1"
    with pytest.raises(InvalidInput):
        database_name("alaska-air", "us east")
    with pytest.raises(InvalidInput):
        validate_identifier("db; DROP", "database")


def test_contiguous_ranges():
    days = [dt.date(2026, 1, d) for d in (5, 1, 2, 3, 9, 10)]
    assert [str(r) for r in contiguous_ranges(days)] == [
        "2026-01-01..2026-01-03",
        "2026-01-05..2026-01-05",
        "2026-01-09..2026-01-10",
    ]


def _comparison(*days: DayResult) -> Comparison:
    return Comparison("alaska-air", "alaska_air_us_east_1", days[0].date, days[-1].date, list(days))


def _plan(**kw) -> BackfillPlan:
    return BackfillPlan.from_dict({**validate_params(GOOD, TODAY).to_dict(), **kw})


def test_guard_refuses_days_postgres_reports_empty_unless_allowed():
    before = _comparison(DayResult(dt.date(2026, 1, 1), 10, 10, 10), DayResult(dt.date(2026, 1, 2), 0, 7, 7))
    problems = guard(_plan(), before)
    assert len(problems) == 1 and "2026-01-02 (7 rows)" in problems[0]
    assert guard(_plan(allow_empty_source=True), before) == []


def test_guard_refuses_a_day_that_would_lose_most_of_its_conversations():
    before = _comparison(DayResult(dt.date(2026, 1, 1), 10, 25, 25, extra=15))  # 60% not in Postgres
    problems = guard(_plan(), before)
    assert len(problems) == 1 and "max_delete_ratio" in problems[0] and "2026-01-01 (15 of 25" in problems[0]
    assert guard(_plan(max_delete_ratio=3.0), before) == []  # up to 66% may go


def test_guard_never_counts_duplicate_rows_as_loss():
    # The seeds' incident: every conversation written three times; Postgres rewrites every one of them.
    before = _comparison(DayResult(dt.date(2026, 1, 1), 10, 30, 10, duplicates=10))
    assert guard(_plan(), before) == []


def test_guard_judges_each_day_not_the_range_total():
    # One lagging day (Postgres has 10% of it) hidden in a range whose total is well within the ratio.
    before = _comparison(
        DayResult(dt.date(2026, 1, 1), 1000, 1000, 1000),
        DayResult(dt.date(2026, 1, 2), 1000, 1000, 1000),
        DayResult(dt.date(2026, 1, 3), 10, 100, 100, extra=90),
    )
    problems = guard(_plan(), before)
    assert len(problems) == 1 and "2026-01-03 (90 of 100 not in Postgres)" in problems[0]


def test_verdict_names_days_and_kinds():
    after = _comparison(
        DayResult(dt.date(2026, 1, 1), 10, 10, 10),
        DayResult(dt.date(2026, 1, 2), 10, 11, 10, duplicates=1),
        DayResult(dt.date(2026, 1, 3), 10, 9, 9, missing=1),
    )
    problems = verdict(after, ["2026-01-04"])
    assert problems[0] == "day job(s) failed: 2026-01-04"
    assert (
        "duplicates remain on 2026-01-02 (1)" in problems and "missing remain on 2026-01-03 (1)" in problems
    )
    assert verdict(_comparison(DayResult(dt.date(2026, 1, 1), 5, 5, 5)), []) == []


def test_failed_days_reads_mapped_states():
    states = {"label_day_0": "success", "label_day_1": "failed", "label_day_2": "upstream_failed"}
    assert failed_days(states, ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]) == [
        "2026-01-02",
        "2026-01-03",
        "2026-01-04",
    ]


def test_day_range_rejects_reversed():
    with pytest.raises(InvalidInput):
        DayRange(dt.date(2026, 1, 2), dt.date(2026, 1, 1))


def test_an_emptied_form_field_means_its_default():
    """The trigger form sends null for a number or flag the user emptied (they are not required there)."""
    nulls = {k: None for k in ("dry_run", "max_parallel_days", "max_days", "allow_empty_source")}
    plan = validate_params({**GOOD, **nulls, "max_delete_ratio": None, "sample_size": None}, TODAY)
    assert (plan.dry_run, plan.max_parallel_days, plan.max_days) == (False, 4, 62)
    assert (plan.allow_empty_source, plan.max_delete_ratio, plan.sample_size) == (False, 2.0, 20)


def test_an_out_of_range_number_is_refused_never_clamped():
    with pytest.raises(InvalidInput, match=r"^max_parallel_days: 40 must be a whole number from 1 to 16$"):
        validate_params({**GOOD, "max_parallel_days": 40}, TODAY)


def test_a_bad_customer_id_gets_a_human_message():
    with pytest.raises(InvalidInput) as err:
        validate_params({**GOOD, "customer": "Alaska_Air"}, TODAY)
    message = str(err.value)
    assert message.startswith(
        "customer: 'Alaska_Air' is not a customer id (lowercase letters, digits and '-'"
    )
    assert message.endswith("e.g. alaska-air); did you mean 'alaska-air'?") and "^" not in message
