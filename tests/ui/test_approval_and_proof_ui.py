"""Approval before the delete, and the proof where people look, in the Airflow UI (real browser, real
Airflow, embedded stack).

1. Trigger the backfill from the form with "Ask for approval before deleting" on; the run waits at
   ``approve_delete``; the run page's **Required Actions** shows what will be deleted and rewritten; Approve;
   the run repairs, and its task list names ``verify`` by the verdict and the before -> after table, and
   ``verify``'s asset event carries customer, days, verdict and counts.
2. The same, Reject: ClickHouse is unchanged byte for byte and the run ends REJECTED (failed: the range is
   still not equal to Postgres), named so on the run page.
3. The drift check over the days test 1 repaired: the clean customer green, the drifted one red, each named
   by its outcome, and ``report`` named by the night's summary with the drifted day ranges.

The tests of this module run in order (3 reads what 1 repaired). Trigger, approve, reject and every proof
go through the browser; the REST API (with the login's token) only waits and reads states.
Run: ``pytest -m ui tests/ui`` (``make test-ui``). Screenshots: ``artifacts/ui/1*.png``.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from tests.airflow_instance import table_digest
from tests.helpers import report_name
from tests.ui.helpers import (
    OPEN_DIALOG,
    UI_TIMEOUT_MS,
    Shots,
    login,
    q,
    scheduler_saw,
    wait_for,
)

pytestmark = pytest.mark.ui

BACKFILL, DRIFT = "conversation_labels_backfill", "conversation_labels_drift_check"
APPROVED = ("alaska-air", "2026-02-06", "2026-02-08")  # avoids the fault-injected 2026-02-03
REJECTED = ("horizon-air", "2026-02-10", "2026-02-11", "horizon_air_us_west_2")


class Session:
    """One logged-in browser page and the API reads the waits use."""

    def __init__(self, airflow_ui: Any, browser: Any, artifacts: Any) -> None:
        from playwright.sync_api import expect

        self.airflow, self.url = airflow_ui, airflow_ui.url
        self.context = browser.new_context(viewport={"width": 1500, "height": 1000})
        self.context.set_default_timeout(UI_TIMEOUT_MS)
        self.context.set_default_navigation_timeout(UI_TIMEOUT_MS)
        expect.set_options(timeout=UI_TIMEOUT_MS)  # expect() has its own 5 s default, not the context's
        self.page = self.context.new_page()
        self.shot = Shots(artifacts)
        self.token = login(self.page, airflow_ui)

    def api(self, path: str) -> dict:
        return self.airflow.api(self.token, path)

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.api(f"/dags/{dag_id}/dagRuns/{q(run_id)}")

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """task_id (mapped: task_id[rendered name]) -> the task instance."""
        out = {}
        for ti in self.api(f"/dags/{dag_id}/dagRuns/{q(run_id)}/taskInstances?limit=100")["task_instances"]:
            key = ti["task_id"]
            if ti["map_index"] >= 0:
                key += f"[{ti.get('rendered_map_index') or ti['map_index']}]"
            out[key] = ti
        return out

    def wait_state(self, dag_id: str, run_id: str, state: str, timeout: float) -> None:
        def reached() -> bool:
            now = self.run(dag_id, run_id)["state"]
            if now in ("success", "failed") and now != state:
                pytest.fail(f"run {run_id} ended {now}, expected {state}: {self.tasks(dag_id, run_id)}")
            return now == state

        wait_for(f"run {run_id} to be {state}", reached, timeout)

    def close(self) -> None:
        from playwright.sync_api import expect

        expect.set_options(timeout=None)
        self.context.close()
        print("[ui] screenshots:", *[f"\n[ui]   {p}" for p in self.shot.taken])


@pytest.fixture
def ui(request, airflow_ui, browser, artifacts):
    session = Session(airflow_ui, browser, artifacts)
    try:
        yield session
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                session.shot(session.page, f"19-failure-{request.node.name[:60]}.png")
            except Exception:  # the browser may be gone: keep the original error
                pass
        session.close()


def trigger_backfill_with_approval(ui: Session, customer: str, first: str, last: str, shot: str = "") -> str:
    """Fill the trigger form, switch on "Ask for approval before deleting", submit; return the run id."""
    from playwright.sync_api import expect

    page = ui.page
    wait_for("the DAG to be parsed", lambda: ui.api(f"/dags/{BACKFILL}"), 180)
    page.goto(f"{ui.url}/dags/{BACKFILL}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.locator(OPEN_DIALOG)
    form.locator("input[name=element_customer]").fill(customer)
    form.locator("input[name=element_start_date]").fill(first)
    form.locator("input[name=element_end_date]").fill(last)
    approval = form.locator("input[name=element_require_approval]")
    expect(approval).not_to_be_checked()  # off by default
    form.get_by_text("Ask for approval before deleting").click()
    expect(approval).to_be_checked()
    submit = form.locator("[data-testid=trigger-dag-submit]")
    expect(submit).to_be_enabled()
    if shot:
        form.get_by_text("Ask for approval before deleting").scroll_into_view_if_needed()
        ui.shot(page, shot)
    submit.click()
    page.wait_for_url(re.compile(rf"/dags/{BACKFILL}/runs/[^/]+$"))
    run_id = q_unquote(page.url.rsplit("/runs/", 1)[1])
    conf = ui.run(BACKFILL, run_id)["conf"]
    assert (conf["customer"], conf["start_date"], conf["end_date"], conf["require_approval"]) == (
        customer,
        first,
        last,
        True,
    ), conf
    return run_id


def q_unquote(value: str) -> str:
    import urllib.parse

    return urllib.parse.unquote(value)


def row(page: Any, task_id: str, text: str | None = None) -> Any:
    """The run page's task-list row of ``task_id`` (optionally the one containing ``text``)."""
    found = page.locator("tr", has=page.get_by_role("link", name=task_id, exact=True))
    return found.filter(has_text=text) if text else found


def answer_on_the_run_page(ui: Session, run_id: str, option: str, shot: str = "") -> str:
    """Wait until approve_delete asks, open the run page's Required Actions, check the request, answer."""
    from playwright.sync_api import expect

    page = ui.page
    wait_for(
        "approve_delete to wait for input",
        lambda: ui.tasks(BACKFILL, run_id)["approve_delete"]["state"] == "awaiting_input",
        300,
    )
    # Airflow 3.3.2 fails a HITL task answered before the scheduler processed the exit of the process that
    # parked it (it finds the resumed task queued: label_backfill.operators, DeleteApprovalOperator); the DAG
    # then asks again. A person takes longer than that; the test waits for the scheduler to have seen it.
    wait_for(
        "the scheduler to see approve_delete wait for input",
        lambda: scheduler_saw(ui.airflow, "approve_delete", run_id, "awaiting_input"),
        90,
        interval=0.5,
    )
    page.goto(f"{ui.url}/dags/{BACKFILL}/runs/{q(run_id)}")
    expect(row(page, "approve_delete")).to_contain_text("waiting for approval")
    expect(row(page, "preflight")).to_contain_text("BEFORE · rows ")
    page.get_by_role("button", name=re.compile("Required Action")).first.click()
    dialog = page.locator(OPEN_DIALOG)
    for text in (
        "ClickHouse rows to delete",
        "Postgres rows to rewrite",
        "Before the repair",
        "Safety guard: passed",
        "No answer within 24 h counts as Reject",
    ):
        expect(dialog.get_by_text(text).first).to_be_visible()
    subject = dialog.get_by_text(re.compile(r"^Delete [\d,]+ ClickHouse rows of ")).first
    expect(subject).to_be_visible()
    if shot:
        page.wait_for_timeout(1000)  # the drawer's opening animation (its content is already there)
        ui.shot(page, f"{shot}-a.png")
        dialog.get_by_role("button", name="Approve", exact=True).scroll_into_view_if_needed()
        ui.shot(page, f"{shot}-b.png")
    text = subject.inner_text()
    dialog.get_by_role("button", name=option, exact=True).click()
    expect(page.get_by_text("approve_delete response successful").first).to_be_visible()
    return text


@pytest.mark.timeout(900)
def test_approve_in_the_ui_then_the_run_repairs_and_shows_its_proof(ui):
    from playwright.sync_api import expect

    started, page = time.monotonic(), ui.page
    customer, first, last = APPROVED
    run_id = trigger_backfill_with_approval(ui, customer, first, last, shot="11-trigger-with-approval.png")
    subject = answer_on_the_run_page(ui, run_id, "Approve", shot="12-approval-request")
    assert f"of {customer} {first}..{last} and rewrite" in subject, subject
    ui.wait_state(BACKFILL, run_id, "success", 360)

    # -- the proof on the run page, in its task list: no log opened
    tasks = ui.tasks(BACKFILL, run_id)
    verdict = tasks["verify"]["rendered_map_index"]
    assert verdict.startswith("EXACT · rows ") and "duplicates " in verdict and "Postgres " in verdict, (
        verdict
    )
    page.goto(f"{ui.url}/dags/{BACKFILL}/runs/{q(run_id)}")
    expect(row(page, "verify")).to_contain_text(verdict)
    expect(row(page, "verify")).to_contain_text("Success")
    expect(row(page, "approve_delete")).to_contain_text("APPROVED by admin at ")
    ui.shot(page, "13-run-exact-proof.png")

    # -- verify's asset event: customer, days, verdict, counts
    page.goto(f"{ui.url}/dags/{BACKFILL}/runs/{q(run_id)}/tasks/verify/asset_events")
    expect(page.get_by_text("conversation_with_labels").first).to_be_visible()
    extra = page.locator(".monaco-editor").first  # the extra's JSON, folded
    extra.locator(".codicon-folding-collapsed").first.click(force=True)
    for text in (
        '"verdict": "EXACT"',
        f'"customer": "{customer}"',
        f'"start_date": "{first}"',
        '"summary": "rows ',
    ):
        expect(extra.locator(".view-lines")).to_contain_text(text)
    ui.shot(page, "14-verify-asset-event.png")

    report = json.loads((ui.airflow.report_dir / BACKFILL / report_name(run_id)).read_text())
    assert report["verdict"] == "EXACT" and report["approval"]["by"] == "admin", report["problems"]
    print(f"[ui] approved and repaired in {time.monotonic() - started:.0f} s: {verdict}")


@pytest.mark.timeout(900)
def test_reject_in_the_ui_leaves_clickhouse_unchanged_and_the_run_rejected(ui):
    from playwright.sync_api import expect

    started, page = time.monotonic(), ui.page
    customer, first, last, database = REJECTED
    before = table_digest(ui.airflow, database, timeout=120)  # no task runs now: the previous run has ended
    run_id = trigger_backfill_with_approval(ui, customer, first, last)
    answer_on_the_run_page(ui, run_id, "Reject")
    ui.wait_state(BACKFILL, run_id, "failed", 360)
    tasks = ui.tasks(BACKFILL, run_id)
    assert {t: tasks[t]["state"] for t in ("approve_delete", "delete_range", "wait_for_mutations")} == {
        "approve_delete": "success",
        "delete_range": "skipped",
        "wait_for_mutations": "skipped",
    }, tasks
    assert tasks["verify"]["state"] == "failed"
    after = table_digest(ui.airflow, database, timeout=120)
    assert after == before, f"ClickHouse changed after a rejection: {before} -> {after}"

    verdict = tasks["verify"]["rendered_map_index"]
    assert verdict.startswith("REJECTED by admin at ") and "nothing deleted" in verdict, verdict
    page.goto(f"{ui.url}/dags/{BACKFILL}/runs/{q(run_id)}")
    expect(row(page, "verify")).to_contain_text("nothing deleted")
    expect(row(page, "approve_delete")).to_contain_text("REJECTED by admin at ")
    expect(row(page, "delete_range")).to_contain_text("Skipped")
    ui.shot(page, "15-run-rejected.png")
    report = json.loads((ui.airflow.report_dir / BACKFILL / report_name(run_id)).read_text())
    assert report["verdict"] == "REJECTED" and report["ok"] is False
    assert "(unchanged)" in report["problems"][0], report["problems"]
    print(f"[ui] rejected in {time.monotonic() - started:.0f} s; ClickHouse {before['rows']} rows unchanged")


@pytest.mark.timeout(900)
def test_the_drift_check_shows_the_drifted_customer_red_and_names_its_days(ui):
    from playwright.sync_api import expect

    started, page = time.monotonic(), ui.page
    repaired, first, last = APPROVED  # repaired by the first test: clean over these days
    drifted = "horizon-air"
    wait_for("the drift DAG to be parsed", lambda: ui.api(f"/dags/{DRIFT}"), 180)
    page.goto(f"{ui.url}/dags/{DRIFT}")
    page.get_by_role("button", name="Trigger Dag").click()
    form = page.locator(OPEN_DIALOG)
    # the window is the lookback_days before the logical date: 2026-02-06..2026-02-08
    form.locator("[data-testid=datetime-input]").click()
    picker = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    picker.locator("input[placeholder='YYYY/MM/DD']").fill("2026/02/09")
    picker.locator("input[placeholder='YYYY/MM/DD']").press("Enter")
    picker.locator("input[placeholder='HH:mm']").fill("04:00")
    picker.locator("input[placeholder='HH:mm']").press("Enter")
    form.get_by_text("Logical Date", exact=True).first.click()  # closes the picker
    expect(form.locator("[data-testid=datetime-input]")).to_contain_text("Feb 09, 2026 04:00")
    form.locator("textarea[name=element_customers]").fill(f"{repaired}\n{drifted}")
    lookback = form.locator("[id='number-input:element_lookback_days:inc']").get_attribute("aria-controls")
    form.locator(f"[id='{lookback}']").fill("3")
    submit = form.locator("[data-testid=trigger-dag-submit]")
    expect(submit).to_be_enabled()
    submit.click()
    page.wait_for_url(re.compile(rf"/dags/{DRIFT}/runs/[^/]+$"))
    run_id = q_unquote(page.url.rsplit("/runs/", 1)[1])
    run = ui.run(DRIFT, run_id)
    assert run["logical_date"].startswith("2026-02-09T04:00"), run
    assert run["conf"]["customers"] == [repaired, drifted] and run["conf"]["lookback_days"] == 3, run["conf"]
    ui.wait_state(DRIFT, run_id, "failed", 360)  # horizon-air drifted: the night alerts

    tasks = ui.tasks(DRIFT, run_id)
    clean = f"{repaired} · clean"
    red = next(k for k in tasks if k.startswith(f"check_customer[{drifted} · DRIFT {first}..{last}"))
    assert tasks[f"check_customer[{clean}]"]["state"] == "success", tasks
    assert tasks[red]["state"] == "failed", tasks
    summary = tasks["report"]["rendered_map_index"]
    assert summary == f"DRIFT {drifted} {first}..{last} · clean 1", summary

    page.goto(f"{ui.url}/dags/{DRIFT}/runs/{q(run_id)}")
    expect(row(page, "check_customer", clean)).to_contain_text("Success")
    expect(row(page, "check_customer", f"{drifted} · DRIFT {first}..{last}")).to_contain_text("Failed")
    expect(row(page, "report")).to_contain_text(summary)
    ui.shot(page, "16-drift-run-summary.png")
    page.goto(f"{ui.url}/dags/{DRIFT}/runs/{q(run_id)}/tasks/check_customer/mapped")
    expect(page.locator("tr", has_text=clean)).to_contain_text("Success")
    expect(page.locator("tr", has_text=f"{drifted} · DRIFT")).to_contain_text("Failed")
    ui.shot(page, "17-drift-customers.png")
    print(f"[ui] drift check shown in {time.monotonic() - started:.0f} s: {summary}")
