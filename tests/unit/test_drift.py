"""The drift check's planning: lookback window, customer selection, repair ranges and budget, problems."""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from label_backfill import drift
from label_backfill.naming import DayRange, InvalidInput

pytestmark = pytest.mark.unit


def result(customer, status, days=()):
    return drift.customer_result(customer, status, {"drifted_days": list(days), "days": [], "totals": {}})


def test_lookback_ends_the_day_before_the_logical_date():
    days = drift.lookback(dt.date(2026, 11, 24), 7)
    assert (days.first, days.last) == (dt.date(2026, 11, 17), dt.date(2026, 11, 23))
    with pytest.raises(InvalidInput, match="lookback_days"):
        drift.lookback(dt.date(2026, 11, 24), 0)


def test_params_default_when_emptied_and_refuse_out_of_range_values():
    emptied = {"customers": None, "lookback_days": None, "auto_repair": None, "max_repair_days": None}
    assert drift.check_params({**emptied, "sample_size": None}) == {
        "customers": [],
        "lookback_days": 7,
        "auto_repair": False,
        "max_repair_days": 7,
        "sample_size": 10,
    }
    for bad, message in (
        ({"lookback_days": 91}, "lookback_days: 91 must be a whole number from 1 to 90"),
        ({"max_repair_days": 63}, "max_repair_days: 63 must be a whole number from 1 to 62"),
        ({"sample_size": -1}, "sample_size: -1 must be a whole number from 0 to 200"),
        ({"customers": "alaska-air"}, "customers: 'alaska-air' must be a list of customer ids"),
        ({"auto_repair": "yes"}, "auto_repair: 'yes' must be true or false"),
    ):
        with pytest.raises(InvalidInput, match=f"^{message}$"):
            drift.check_params(bad)


def test_customer_selection_keeps_invalid_entries_for_their_own_check():
    profiles = [("b-air", "us-east-1"), ("a-air", "eu-west-1"), ("Bad Air", "us-east-1")]
    assert drift.select_customers([], profiles) == ["Bad Air", "a-air", "b-air"]
    assert drift.select_customers(["b-air", "b-air"], profiles) == ["b-air"]
    assert drift.select_customers(["b-air; drop", "a-air"], profiles) == ["a-air", "b-air; drop"]


def test_repairs_follow_contiguous_ranges_within_the_budget():
    days = ["2026-02-01", "2026-02-02", "2026-02-03", "2026-02-07", "2026-02-09", "2026-02-10"]
    plans = drift.plan_repairs(
        [result("a-air", "drift", days), result("b-air", "clean"), result("c-air", "error", days)],
        4,
        "scheduled__2026-02-15",
    )  # only drift is repaired: an error's comparison is not a diagnosis
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


def test_which_statuses_fail_the_run():
    assert [s.value for s in drift.Status if not drift.fails_run(s)] == ["clean", "no_data"]
    assert drift.fails_run("something_new")  # an unknown status is never green
    assert drift.STATUS_NO_DATABASE == "missing_database" and drift.STATUS_INVALID == "invalid"


def comparison(days, pg=5, ch=5, drifted=()):
    return {
        "days": [{"date": d.isoformat(), "ok": d.isoformat() not in drifted} for d in days.days],
        "drifted_days": list(drifted),
        "totals": {"pg_eligible": pg, "ch_rows": ch},
    }


WINDOW = DayRange(dt.date(2026, 2, 1), dt.date(2026, 2, 3))


def test_classify_tells_clean_from_no_data_and_drift_and_never_skips_a_day():
    assert drift.classify("a", comparison(WINDOW), WINDOW)["status"] == "clean"
    assert (
        drift.classify("a", comparison(WINDOW, pg=0, ch=3), WINDOW)["status"] == "clean"
    )  # rows on one side: not no_data
    empty = drift.classify("a", comparison(WINDOW, pg=0, ch=0), WINDOW)
    assert (
        empty["status"] == "no_data" and empty["error"] == "0 rows on both sides over 2026-02-01..2026-02-03"
    )
    assert drift.classify("a", comparison(WINDOW, drifted=["2026-02-02"]), WINDOW)["status"] == "drift"
    short = comparison(DayRange(WINDOW.first, WINDOW.first), pg=0, ch=0)
    left_out = drift.classify("a", short, WINDOW)
    assert left_out["status"] == "error" and left_out["error"] == "days not compared: 2026-02-02..2026-02-03"


class FakePostgres:
    def __init__(self, regions, fail=None):
        self.regions, self.fail = regions, fail

    @contextlib.contextmanager
    def __call__(self):
        if self.fail:
            raise self.fail
        yield self

    def region(self, customer):
        return self.regions.get(customer)


class FakeClickHouse:
    def __init__(self, database, exists=True):
        self.database, self.table = database, FakeTable(database, exists)


class FakeTable:
    def __init__(self, database, exists):
        self.read_name, self._exists = f"{database}.conversation_with_labels", exists

    def exists(self):
        return self._exists


class FakeComparison:
    def __init__(self, days):
        self.days = days

    def to_dict(self):
        return comparison(self.days)


def check(customer, regions=None, *, fail=None, exists=True, compare=None, source="profiles"):
    return drift.check_customer(
        customer,
        WINDOW,
        source=source,
        postgres_side=FakePostgres(regions or {}, fail),
        clickhouse_side=lambda database: FakeClickHouse(database, exists),
        compare=compare or (lambda pg, ch, customer, days, sample_size: FakeComparison(days)),
        sample_size=3,
    )


def test_every_outcome_of_one_customer_is_a_result_never_an_exception():
    assert check("a-air", {"a-air": "us-east-1"})["status"] == "clean"
    bad_id = check("x; DROP DATABASE y", source="customers")
    assert bad_id["status"] == "invalid" and bad_id["error"].startswith("customers: 'x; DROP DATABASE y'")
    assert check("Bad Air")["error"].startswith("profiles: 'Bad Air' is not a customer id")
    bad_region = check("a-air", {"a-air": "US EAST"})
    assert bad_region["status"] == "invalid" and bad_region["error"].startswith("region: 'US EAST'")
    assert check("a-air", {"a-air": None})["status"] == "no_profile"
    assert check("a-air")["status"] == "no_profile"
    missing = check("a-air", {"a-air": "us-east-1"}, exists=False)
    assert missing == drift.customer_result(
        "a-air", "missing_database", error="no table a_air_us_east_1.conversation_with_labels"
    )
    down = check("a-air", {"a-air": "us-east-1"}, fail=OSError("connection refused\n  is it running?"))
    assert down["status"] == "error" and down["error"] == "OSError: connection refused is it running?"

    def boom(*args, **kwargs):
        raise RuntimeError("read timed out")

    assert check("a-air", {"a-air": "us-east-1"}, compare=boom)["error"] == "RuntimeError: read timed out"


def test_a_listed_customer_without_a_result_is_not_checked():
    results = [result("a-air", "clean"), result("c-air", "drift", ["2026-02-01"])]
    out = drift.reconcile(["a-air", "b-air", "c-air"], results)
    assert [(r["customer"], r["status"]) for r in out] == [
        ("a-air", "clean"),
        ("c-air", "drift"),
        ("b-air", "not_checked"),
    ]
    assert out[2]["error"].startswith("check_customer [1] left no result")
    assert drift.problems(out, WINDOW)[1].startswith("b-air: not_checked (check_customer [1]")


def test_why_nobody_was_checked():
    assert drift.not_checked_reason(None, "the run's params were refused: x", None, None) == (
        "the run's params were refused: x"
    )
    assert "check_window" in drift.not_checked_reason(None, None, None, None)
    assert drift.not_checked_reason(WINDOW, None, None, "listing the customers failed: E") == (
        "listing the customers failed: E"
    )
    assert "customers_to_check" in drift.not_checked_reason(WINDOW, None, None, None)
    assert drift.not_checked_reason(WINDOW, None, [], None) == "the list of customers to check was empty"
    assert drift.not_checked_reason(WINDOW, None, ["a-air"], "stale reason from a failed try") == ""


def test_no_data_alone_is_green_but_not_for_everyone():
    quiet = drift.customer_result("q-air", "no_data", comparison(WINDOW, 0, 0))
    assert drift.problems([result("a-air", "clean"), quiet], WINDOW) == []
    assert drift.problems([quiet], WINDOW) == [
        "every checked customer has no data on either side over 2026-02-01..2026-02-03 (1 customer): "
        "a dead source or a wrong window?"
    ]
    bad = drift.customer_result("b-air", "error", error="E")
    assert drift.problems([quiet, bad], WINDOW)[-1].startswith("every checked customer has no data")
    assert drift.problems([], WINDOW) == ["no customer was checked: no result"]
    assert drift.problems([quiet], WINDOW, "Postgres has no profiles") == [
        "no customer was checked: Postgres has no profiles"
    ]


def test_report_and_markdown_say_what_was_not_checked():
    nobody = drift.report_document([], None, "r1", [], "n", "the run's params were refused: x")
    assert nobody["ok"] is False and nobody["start_date"] is None and nobody["customers"] == []
    markdown = drift.render_markdown(nobody)
    assert markdown.startswith("# Label drift (no window): NOT CHECKED")
    assert "matches" not in markdown and "| customer |" not in markdown
    quiet = drift.customer_result("q-air", "no_data", comparison(WINDOW, 0, 0))
    green = drift.report_document([result("a-air", "clean"), quiet], WINDOW, "r2", [], "n")
    assert (
        green["ok"] is True
        and green["no_data"] == ["q-air"]
        and green["statuses"] == {"clean": 1, "no_data": 1}
    )
    markdown = drift.render_markdown(green)
    assert markdown.startswith("# Label drift 2026-02-01..2026-02-03: clean")
    assert (
        "every customer with data matches Postgres" in markdown and "not counted as clean): q-air" in markdown
    )
    partial = drift.report_document(
        [result("a-air", "drift", ["2026-02-01"]), drift.customer_result("b|air", "invalid", error="E")],
        WINDOW,
        "r3",
        [],
        "n",
    )
    assert [c["customer"] for c in partial["customers"]] == ["a-air", "b|air"]
    markdown = drift.render_markdown(partial)
    assert markdown.startswith("# Label drift 2026-02-01..2026-02-03: INCOMPLETE, DRIFT")
    assert "| b\\|air | invalid |" in markdown
