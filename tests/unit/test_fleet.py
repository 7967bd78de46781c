"""The fleet's pure parts: which customer-ranges a conf means, and every customer's verdict."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill import fleet
from label_backfill.naming import InvalidInput

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 11, 28)
SPAN = {"start_date": "2026-02-01", "end_date": "2026-02-14"}


def test_a_list_of_customers_gets_the_range_each_and_the_fleets_guards():
    out = fleet.validate({"customers": ["horizon-air", "alaska-air", " "], **SPAN}, TODAY)
    assert out["repairs"] == [{"customer": c, **SPAN} for c in ("alaska-air", "horizon-air")]
    assert out["dry_run"] is True  # the plan comes first unless asked otherwise
    assert fleet.child_conf(out["repairs"][0], out["child_params"]) == {
        "customer": "alaska-air",
        **SPAN,
        "max_days": 62,
        "allow_empty_source": False,
        "max_delete_ratio": 2.0,
        "max_parallel_days": 4,
        "sample_size": 20,
        "dry_run": False,
        "require_approval": False,
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({**SPAN}, "exactly one way"),  # nobody: every customer is never the default
        ({"customers": ["alaska-air"], "all_customers": True, **SPAN}, "got customers, all_customers"),
        ({"customers": ["Alaska Air"], **SPAN}, "'Alaska Air': customer:"),
        (
            {"customers": ["alaska-air"], "start_date": "2026-01-01", "end_date": "2026-11-26"},
            "over max_days=62",
        ),
        (
            {"all_customers": True, "start_date": "2026-01-01", "end_date": "2026-11-28"},
            "not a finished UTC day",
        ),
        ({"customers": ["alaska-air"], **SPAN, "max_parallel_customers": 0}, "max_parallel_customers"),
        ({"customers": ["alaska-air"], **SPAN, "max_delete_ratio": 0.5}, "max_delete_ratio"),
        (
            {
                "repairs": [
                    {"customer": "a", "start_date": "2026-02-01", "end_date": "2026-02-03"},
                    {"customer": "a", "start_date": "2026-02-03", "end_date": "2026-02-04"},
                ]
            },
            "overlap",
        ),  # fmt: skip
        ({"repairs": [{"customer": "a", "start_date": "2026-02-01"}]}, "exactly"),
        ({"repairs": [{"customer": "a", **SPAN}], **SPAN}, "not with repairs"),
    ],
)
def test_bad_input_is_refused_naming_it(params, message):
    with pytest.raises(InvalidInput, match=message):
        fleet.validate(params, TODAY)


def test_the_real_fleet_fits_when_its_guard_is_raised():
    # 88 customers x 2026-01-01..2026-11-26 (330 days): one run per customer, none over max_map_length
    customers = [f"customer-{i:02d}" for i in range(88)]
    out = fleet.validate(
        {"customers": customers, "start_date": "2026-01-01", "end_date": "2026-11-26", "max_days": 366}, TODAY
    )
    assert len(out["repairs"]) == 88
    too_many = [{"customer": f"c-{i}", **SPAN} for i in range(fleet.MAX_FLEET_REPAIRS + 1)]
    with pytest.raises(InvalidInput, match="at most 1000 per fleet run"):
        fleet.check_repairs(too_many, out["child_params"], TODAY)


def test_child_run_ids_are_deterministic_and_valid():
    a = fleet.child_run_id("manual__2026-11-28T07:00:00+00:00", {"customer": "alaska-air", **SPAN})
    assert a == fleet.child_run_id("manual__2026-11-28T07:00:00+00:00", {"customer": "alaska-air", **SPAN})
    assert a.startswith("fleet__alaska-air__2026-02-01__2026-02-14__manual__") and len(a) <= 250


def plan(status, **kw):
    return {"customer": "alaska-air", **SPAN, "status": status, "drifted_days": ["2026-02-03"], "days": 14,
            "delete_rows": 10, "rewrite_rows": 9, "outside": 0, "problems": [], "error": "", **kw}  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "dry_run", "child", "expected"),
    [
        (plan(fleet.PLAN_CLEAN, drifted_days=[]), False, None, fleet.EXACT),
        (plan(fleet.PLAN_REFUSED, problems=["lossy"]), False, None, fleet.REFUSED),
        (plan(fleet.PLAN_ERROR, error="down"), False, None, fleet.FAILED),
        (plan(fleet.PLAN_REPAIR), True, None, fleet.DRY_RUN),
        (plan(fleet.PLAN_REPAIR), False, None, fleet.FAILED),  # never triggered
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "success", "report": {"verdict": "EXACT"}},
         fleet.EXACT),
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "success", "report": None}, fleet.FAILED),
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "failed", "report": {"verdict": "NOT EXACT"}},
         fleet.NOT_EXACT),
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "failed", "report": {"verdict": "REFUSED"}},
         fleet.REFUSED),
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "running", "report": None}, fleet.FAILED),
        (plan(fleet.PLAN_REPAIR), False, {"run_id": "r", "state": "failed", "report": {"verdict": "EXACT"}},
         fleet.FAILED),  # a stale EXACT report of a run that failed since proves nothing
    ],
)  # fmt: skip
def test_every_customer_gets_one_verdict(entry, dry_run, child, expected):
    assert fleet.verdict(entry, dry_run, child)["verdict"] == expected


def test_the_fleet_is_green_only_when_every_customer_is_exact():
    exact = fleet.verdict(plan(fleet.PLAN_CLEAN, drifted_days=[]), False, None)
    refused = {
        **fleet.verdict(plan(fleet.PLAN_REFUSED, problems=["x"]), False, None),
        "customer": "sun-country",
    }
    doc = fleet.document("run", {"dry_run": False}, [plan(fleet.PLAN_CLEAN)], [exact, refused])
    assert (
        not doc["ok"] and doc["verdict"] == fleet.REFUSED and doc["customers"][0]["customer"] == "sun-country"
    )
    assert fleet.summary_line(doc).startswith("REFUSED · REFUSED 1 · EXACT 1")
    assert fleet.document("run", {"dry_run": False}, [], [exact])["ok"]
    assert not fleet.document("run", {"dry_run": False}, [], [])["ok"]  # nothing checked is never green
    assert "| alaska-air |" in fleet.render_markdown(doc)


def test_the_plan_line_says_what_the_run_will_do():
    plans = [plan(fleet.PLAN_REPAIR), plan(fleet.PLAN_REFUSED, customer="sun-country", problems=["x"])]
    assert fleet.plan_line(plans, True) == (
        "DRY RUN · 1 of 2 customer(s) to repair · 1 refused · would delete 10 rows, rewriting 9"
    )
    assert fleet.plan_line(plans, False).startswith("PLAN · 1 of 2 customer(s) to repair")
