"""What a run shows without a log: the labels, the approval page's text and the asset events' extras."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.compare.report import Comparison, DayResult
from label_backfill.proof import (
    LABEL_MAX,
    approval_decision,
    backfill_event_extra,
    customer_label,
    decision_label,
    decision_text,
    drift_event_extra,
    drift_summary,
    label,
    table_line,
)

pytestmark = pytest.mark.unit

DAY1, DAY2, DAY3 = dt.date(2026, 2, 2), dt.date(2026, 2, 3), dt.date(2026, 2, 4)


def _comparison(*days: DayResult) -> Comparison:
    return Comparison("alaska-air", "alaska_air_us_east_1", days[0].date, days[-1].date, list(days))


BEFORE = _comparison(
    DayResult(DAY1, 2272, 2300, 2286, duplicates=14, missing=9, extra=23, stale=191),
    DayResult(DAY2, 2276, 2283, 2283, missing=14, extra=21, stale=177),
)
AFTER = _comparison(DayResult(DAY1, 2272, 2272, 2272), DayResult(DAY2, 2276, 2276, 2276))


def test_the_before_after_table_in_one_line():
    assert table_line(BEFORE, AFTER) == (
        "rows 4,583→4,548 · distinct 4,569→4,548 · duplicates 14→0 · stale 368→0 · missing 23→0 · "
        "extra 44→0 · Postgres 4,548"
    )
    assert table_line(BEFORE).startswith("rows 4,583 · distinct 4,569 · duplicates 14 · stale 368")


def test_a_label_fits_the_metadata_column_and_is_one_line():
    text = label("REFUSED", "why\n" * 200, None, "")
    assert len(text) == LABEL_MAX and text.endswith("…") and "\n" not in text
    assert label("EXACT", None, "rows 1→1") == "EXACT · rows 1→1"


def test_decisions_say_who_and_when_or_why_not():
    at = dt.datetime(2026, 11, 28, 5, 40, 12, tzinfo=dt.UTC)
    assert decision_text(approval_decision(asked=False)) == "not asked (require_approval is off)"
    assert approval_decision(asked=False, approved=False)["approved"] is True  # not asked = not stopped
    assert (
        decision_text(approval_decision(asked=True, by="ann", at=at))
        == "approved by ann at 2026-11-28 05:40 UTC"
    )
    rejected = approval_decision(asked=True, approved=False, by="bob", at=at)
    assert decision_text(rejected) == "rejected by bob at 2026-11-28 05:40 UTC" and rejected["at"].endswith(
        "+00:00"
    )
    late = approval_decision(asked=True, approved=False, timed_out=True, timeout_seconds=86400)
    assert decision_text(late) == "not answered within 24 h: rejected by default"
    assert decision_text(None) == "no decision recorded"
    # approve_delete's label, the verdict first
    assert (
        decision_label(approval_decision(asked=True, by="ann", at=at))
        == "APPROVED by ann at 2026-11-28 05:40 UTC"
    )
    assert decision_label(rejected) == "REJECTED by bob at 2026-11-28 05:40 UTC"
    assert decision_label(late) == "REJECTED: not answered within 24 h"
    assert decision_label(approval_decision(asked=False)) == "not asked (require_approval is off)"


def test_the_backfill_event_carries_customer_days_verdict_and_counts():
    extra = backfill_event_extra(
        customer="alaska-air",
        database="alaska_air_us_east_1",
        start_date="2026-02-02",
        end_date="2026-02-03",
        verdict="EXACT",
        before=BEFORE,
        after=AFTER,
        report="/r/x.json",
        run_id="manual__1",
    )
    assert extra["days"] == 2 and extra["ok"] is True and extra["postgres"] == 4548
    assert extra["before"] == {
        "rows": 4583,
        "distinct": 4569,
        "duplicates": 14,
        "stale": 368,
        "missing": 23,
        "extra": 44,
    }
    assert extra["after"]["rows"] == 4548 and extra["after"]["stale"] == 0 and extra["approval"] is None
    assert extra["summary"] == table_line(BEFORE, AFTER)


def _result(customer: str, status: str, drifted=(), error: str = "", **totals) -> dict:
    days = [
        {"date": d.isoformat(), "ok": d.isoformat() not in drifted, "sample": []} for d in (DAY1, DAY2, DAY3)
    ]
    comparison = {"drifted_days": list(drifted), "totals": totals, "days": days}
    return {"customer": customer, "status": status, "error": error, "comparison": comparison}


def test_each_customer_is_named_by_its_outcome():
    drift = _result("alaska-air", "drift", ["2026-02-02", "2026-02-03"], stale=12, duplicates=3)
    assert customer_label(drift) == "alaska-air · DRIFT 2026-02-02..2026-02-03 (stale 12, duplicates 3)"
    assert customer_label(_result("horizon-air", "clean")) == "horizon-air · clean"
    assert customer_label(_result("x", "no_data")) == "x · no data"
    assert customer_label(_result("ghost", "missing_database", error="no table g.t")) == (
        "ghost · MISSING DATABASE: no table g.t"
    )
    gap = _result("sun-country", "drift", ["2026-02-02", "2026-02-04"], missing=1)
    assert customer_label(gap) == "sun-country · DRIFT 2026-02-02, 2026-02-04 (missing 1)"


def _document(results: list[dict], ok: bool, reason: str = "") -> dict:
    from label_backfill.drift import report_document
    from label_backfill.naming import DayRange

    document = report_document(
        results, DayRange(DAY1, DAY3), "scheduled__1", [], "auto_repair is off", reason
    )
    assert document["ok"] is ok
    return document


def test_the_run_summary_lists_drifted_customers_with_their_day_ranges_first():
    document = _document(
        [
            _result("horizon-air", "clean", stale=0),
            _result("alaska-air", "drift", ["2026-02-03", "2026-02-04"], stale=2),
            _result("ghost", "no_profile", error="no profile in Postgres"),
        ],
        ok=False,
    )
    assert drift_summary(document) == "DRIFT alaska-air 2026-02-03..2026-02-04 · NO PROFILE ghost · clean 1"
    extra = drift_event_extra(document, "/r/d.json")
    assert extra["drifted"] == {"alaska-air": "2026-02-03..2026-02-04"}
    assert extra["statuses"] == {"clean": ["horizon-air"], "drift": ["alaska-air"], "no_profile": ["ghost"]}
    assert (extra["start_date"], extra["end_date"], extra["ok"]) == ("2026-02-02", "2026-02-04", False)


def test_a_clean_night_and_a_night_nobody_was_checked():
    clean = _document([_result("a", "clean", ch_rows=5), _result("b", "no_data")], ok=True)
    assert drift_summary(clean) == "clean: 1 customer(s) equal · no data 1"
    empty = _document([_result("a", "no_data"), _result("b", "no_data")], ok=False)
    assert drift_summary(empty) == "NO DATA: 2 customer(s), 0 rows on both sides"
    nobody = _document([], ok=False, reason="Postgres has no profiles")
    assert drift_summary(nobody) == "NOT CHECKED · Postgres has no profiles"
