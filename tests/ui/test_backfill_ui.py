"""The backfill as an operator lives it, in the Airflow UI (real browser, real Airflow, embedded stack).

Trigger the backfill from the form, watch the day tasks named by date in the grid, see the run fail on the
injected 2026-02-03 fault (verify names the day), clear that day with downstream, see the run end green
with an exact report. The trigger, the day names and the clear go through the browser; the REST API (with
the login's token) is only used to wait and to read states.

Run: ``pytest -m ui tests/ui`` (``make test-ui``). Screenshots: ``artifacts/ui/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path

import pytest

from tests.helpers import report_name
from tests.ui.helpers import OPEN_DIALOG, UI_TIMEOUT_MS, q, wait_for

pytestmark = pytest.mark.ui

DAG_ID = "conversation_labels_backfill"
CUSTOMER = "alaska-air"
DAYS = ["2026-02-02", "2026-02-03", "2026-02-04"]
FAILING_DAY = "2026-02-03"


@pytest.mark.timeout(900)
def test_backfill_fails_on_a_day_then_a_ui_clear_makes_it_green(airflow_ui, browser, artifacts):
    from playwright.sync_api import expect

    started = time.monotonic()
    url = airflow_ui.url
    shots: list[Path] = []

    def shot(target, name: str) -> None:
        path = artifacts / name
        target.screenshot(path=str(path))
        shots.append(path)
        print(f"[ui] screenshot {path}")

    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    context.set_default_navigation_timeout(UI_TIMEOUT_MS)
    expect.set_options(timeout=UI_TIMEOUT_MS)  # expect() has its own 5 s default, not the context's
    page = context.new_page()
    try:
        # -- log in through the form
        page.goto(f"{url}/")
        page.wait_for_url(re.compile(r"/auth/login"))
        page.get_by_label("Username").fill(airflow_ui.user)
        page.get_by_label("Password").fill(airflow_ui.password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda u: "/auth/login" not in u)
        token = next((c["value"] for c in context.cookies() if c["name"] == "_token"), None)
        token = token or airflow_ui.token()

        def api(path: str) -> dict:
            return airflow_ui.api(token, path)

        def task_instances(run_id: str) -> list[dict]:
            return api(f"/dags/{DAG_ID}/dagRuns/{q(run_id)}/taskInstances?limit=100")["task_instances"]

        def states(run_id: str) -> dict[str, dict]:
            """task_id or label_day[<day or index>] -> the task instance."""
            out = {}
            for ti in task_instances(run_id):
                key = ti["task_id"]
                if ti["map_index"] >= 0:
                    key += f"[{ti.get('rendered_map_index') or ti['map_index']}]"
                out[key] = ti
            return out

        wait_for("the DAG to be parsed", lambda: api(f"/dags/{DAG_ID}"), 180)

        # -- trigger from the form (string params with format=date are <input type=date>)
        page.goto(f"{url}/dags/{DAG_ID}")
        page.get_by_role("button", name="Trigger Dag").click()
        form = page.locator(OPEN_DIALOG)
        form.locator("input[name=element_customer]").fill(CUSTOMER)
        form.locator("input[name=element_start_date]").fill(DAYS[0])
        form.locator("input[name=element_end_date]").fill(DAYS[-1])
        submit = form.locator("[data-testid=trigger-dag-submit]")
        expect(submit).to_be_enabled()
        shot(page, "01-trigger-form.png")
        submit.click()
        page.wait_for_url(re.compile(rf"/dags/{DAG_ID}/runs/[^/]+$"))
        run_id = urllib.parse.unquote(page.url.rsplit("/runs/", 1)[1])
        run = api(f"/dags/{DAG_ID}/dagRuns/{q(run_id)}")
        assert {k: run["conf"].get(k) for k in ("customer", "start_date", "end_date")} == {
            "customer": CUSTOMER,
            "start_date": DAYS[0],
            "end_date": DAYS[-1],
        }, run["conf"]
        print(f"[ui] triggered {run_id} ({time.monotonic() - started:.0f} s into the test)")

        # -- watch it in the grid (the run page, which refreshes itself) until it fails; the mapped day
        # tasks take their dates as names when they run (a day waiting for its retry shows its index
        # until the next try renders the name again)
        wait_for(
            "the run to fail",
            lambda: api(f"/dags/{DAG_ID}/dagRuns/{q(run_id)}")["state"] == "failed",
            360,
        )
        failed = states(run_id)
        assert all(f"label_day[{d}]" in failed for d in DAYS), f"days not named by date: {sorted(failed)}"
        assert failed[f"label_day[{FAILING_DAY}]"]["state"] == "failed"
        assert failed[f"label_day[{FAILING_DAY}]"]["try_number"] == 3  # retries=2: attempts 1-3 failed
        assert all(failed[f"label_day[{d}]"]["state"] == "success" for d in DAYS if d != FAILING_DAY)
        assert failed["verify"]["state"] == "failed"

        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}")
        for day in DAYS:
            expect(page.get_by_role("link", name=day, exact=True).first).to_be_visible()
        shot(page, "02-run-failed-grid.png")

        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}/tasks/label_day/mapped")
        for day in DAYS:
            row = page.locator("tr", has=page.get_by_role("link", name=day, exact=True))
            expect(row).to_contain_text("Failed" if day == FAILING_DAY else "Success")
        shot(page, "03-label-day-by-date.png")

        # -- verify failed, and its log names the day
        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}/tasks/verify")

        def failure_line() -> str | None:
            lines = page.locator("body").inner_text().splitlines()
            return next((line for line in lines if "AirflowFailException" in line), None)

        line = wait_for("verify's log to show its failure", failure_line, UI_TIMEOUT_MS / 1000, interval=0.5)
        assert FAILING_DAY in line, line
        shot(page, "04-verify-failed-log.png")

        # -- clear the failed day from its page, with downstream (verify runs again)
        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}/tasks/label_day/mapped")
        page.get_by_role("link", name=FAILING_DAY, exact=True).first.click()
        page.wait_for_url(re.compile(r"/tasks/label_day/mapped/\d+$"))
        expect(page.get_by_text(f"label_day [{FAILING_DAY}]").first).to_be_visible()
        page.get_by_role("button", name=re.compile(r"clear", re.I)).first.click()
        dialog = page.locator(OPEN_DIALOG)
        expect(dialog).to_contain_text("Clear Task Instance")
        affected = dialog.locator("tbody tr")
        expect(affected.first).to_be_visible()
        if not affected.filter(has_text="verify").count():
            dialog.get_by_role("button", name="Downstream", exact=True).click()
        expect(affected.filter(has_text="verify")).to_have_count(1)
        expect(affected.filter(has_text="label_day")).to_have_count(1)
        # the day is inside the customer lease's setup/teardown scope: clearing it claims the customer again
        expect(affected.filter(has_text="claim_customer")).to_have_count(1)
        expect(affected.filter(has_text="release_customer")).to_have_count(1)
        expect(affected).to_have_count(4)
        shot(page, "05-clear-with-downstream.png")
        dialog.get_by_role("button", name="Confirm").click()
        expect(dialog).to_be_hidden()

        # -- the run ends green: the day's 4th attempt succeeds, verify passes
        wait_for(
            "the run to succeed after the clear",
            lambda: api(f"/dags/{DAG_ID}/dagRuns/{q(run_id)}")["state"] == "success",
            240,
        )
        done = states(run_id)
        assert all(f"label_day[{d}]" in done for d in DAYS), f"days not named by date: {sorted(done)}"
        assert done[f"label_day[{FAILING_DAY}]"]["state"] == "success"
        assert done[f"label_day[{FAILING_DAY}]"]["try_number"] == 4
        assert done["verify"]["state"] == "success"

        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}")
        for day in DAYS:
            row = page.locator("tr", has=page.get_by_role("link", name=day, exact=True))
            expect(row).to_contain_text("Success")
        shot(page, "06-run-success.png")

        page.goto(f"{url}/dags/{DAG_ID}/runs/{q(run_id)}/tasks/verify")
        expect(page.get_by_text("Done. Returned value was").first).to_be_visible()
        report_line = page.get_by_text(re.compile(r"report: .*\.json")).first
        post_execute = page.get_by_text("Post Execute").first
        # print() lines get their timestamp when the supervisor reads them, just after the task's "Done":
        # the log view may sort them into the collapsed "Post Execute" group; wait for one or the other
        expect(report_line.or_(post_execute).first).to_be_visible()
        if not report_line.is_visible():
            post_execute.click()
        expect(report_line).to_be_visible()
        shot(page, "07-verify-report.png")

        report_path = airflow_ui.report_dir / DAG_ID / report_name(run_id)
        assert report_path.exists(), f"no report at {report_path}"
        report = json.loads(report_path.read_text())
        assert report["ok"] is True, report.get("problems")
        assert report["failed_days"] == []
        print(f"[ui] report {report_path}: ok={report['ok']}")
    except BaseException:
        try:
            shot(page, "99-failure.png")
        except Exception:  # the browser may be gone: keep the original error
            pass
        raise
    finally:
        expect.set_options(timeout=None)
        context.close()
        print(f"[ui] test body took {time.monotonic() - started:.0f} s; screenshots:")
        for path in shots:
            print(f"[ui]   {path}")
