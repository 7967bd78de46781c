"""The approval step and the run's visible proof, with dag.test() on the embedded stack.

dag.test() keeps a run whose task waits in ``awaiting_input`` alive until an answer is recorded from
outside (Airflow 3.3, ``DAG.test``): ``Responder`` records it in the metadata database the way the API
server's ``PATCH .../hitlDetails`` does (the answer on the HITL row, then ``handle_event_submit``), or runs the
scheduler's own timeout sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``) once the deadline passed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.helpers import report_name, run_dag, table_snapshot

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
DB = "alaska_air_us_east_1"
RANGE = {"customer": "alaska-air", "start_date": "2026-02-02", "end_date": "2026-02-04"}


class Responder(threading.Thread):
    """Answers the first ``approve_delete`` request of the DAG that waits for input: ``option`` as user
    ``admin``, or (``option=None``) the scheduler's timeout sweep once the request's deadline passed."""

    def __init__(self, option: str | None, timeout: float = 240) -> None:
        super().__init__(daemon=True)
        self.option, self.timeout = option, timeout
        self.request: dict[str, Any] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._answer()
        except BaseException as err:  # reported by the test
            self.error = err

    def _awaiting(self, session: Any) -> Any:
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.state import TaskInstanceState

        return (
            session.query(TaskInstance)
            .filter_by(dag_id=DAG_ID, task_id="approve_delete", state=TaskInstanceState.AWAITING_INPUT)
            .one_or_none()
        )

    def _answer(self) -> None:
        import logging
        from types import SimpleNamespace

        from airflow._shared.timezones import timezone
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
        from airflow.models.hitl import HITLDetail, HITLUser
        from airflow.models.trigger import handle_event_submit
        from airflow.triggers.base import TriggerEvent
        from airflow.utils.session import create_session

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with create_session() as session:
                ti = self._awaiting(session)
                if ti is None:
                    pass
                elif self.option is None:  # no answer: the scheduler's sweep, once the deadline passed
                    if ti.trigger_timeout and ti.trigger_timeout < timezone.utcnow():
                        detail = session.get(HITLDetail, ti.id)
                        self.request = {"subject": detail.subject, "body": detail.body}
                        session.commit()
                        SchedulerJobRunner.check_awaiting_input_timeouts(
                            SimpleNamespace(log=logging.getLogger("sweep"))
                        )
                        return
                else:  # what the API server's PATCH .../hitlDetails does
                    detail = session.get(HITLDetail, ti.id)
                    self.request = {
                        "subject": detail.subject,
                        "body": detail.body,
                        "defaults": detail.defaults,
                    }
                    detail.responded_by = HITLUser(id="admin", name="admin")
                    detail.responded_at = timezone.utcnow()
                    detail.chosen_options = [self.option]
                    detail.params_input = {}
                    handle_event_submit(
                        TriggerEvent(detail.as_resume_event_payload()), task_instance=ti, session=session
                    )
                    return
            time.sleep(0.5)
        raise TimeoutError(f"approve_delete did not wait for input within {self.timeout} s")


def answered(option: str | None, conf: dict[str, Any]) -> tuple[Any, dict[str, list[str]], dict[str, Any]]:
    responder = Responder(option)
    responder.start()
    run, states = run_dag(DAG_ID, conf)
    responder.join(10)
    assert responder.error is None, responder.error
    return run, states, responder.request


def labels(run: Any) -> dict[str, str | None]:
    """Each task's name in the run's task list (``rendered_map_index``; mapped days by index)."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.rendered_map_index
        for ti in run.get_task_instances()
    }


def asset_events(run: Any) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        return [
            e.extra
            for e in session.query(AssetEvent).filter_by(source_dag_id=DAG_ID, source_run_id=run.run_id).all()
        ]


def read_report(reports_dir, run) -> dict[str, Any]:
    return json.loads((reports_dir / DAG_ID / report_name(run.run_id)).read_text())


def test_off_by_default_nobody_is_asked_and_the_proof_is_on_the_run(incident, airflow_db, reports_dir):
    run, states = run_dag(DAG_ID, RANGE)
    assert str(run.state) == "success", states
    assert states["approve_delete"] == ["success"] and states["delete_range"] == ["success"]
    shown = labels(run)
    assert shown["approve_delete"] == "not asked (require_approval is off)"
    assert shown["preflight"].startswith("BEFORE · rows ") and "Postgres " in shown["preflight"]
    assert shown["verify"].startswith("EXACT · rows ") and "duplicates " in shown["verify"]
    assert "→" in shown["verify"] and "Postgres " in shown["verify"]
    report = read_report(reports_dir, run)
    assert report["verdict"] == "EXACT" and report["approval"]["asked"] is False
    (event,) = asset_events(run)
    assert (event["customer"], event["start_date"], event["end_date"]) == (
        "alaska-air",
        "2026-02-02",
        "2026-02-04",
    )
    assert event["verdict"] == "EXACT" and event["ok"] is True and event["days"] == 3
    assert event["after"]["duplicates"] == event["after"]["stale"] == 0
    assert event["before"]["rows"] == report["before"]["totals"]["ch_rows"]
    assert event["after"]["rows"] == event["postgres"] == report["after"]["totals"]["pg_eligible"]


def test_approved_the_run_repairs(incident, pg, ch, airflow_db, reports_dir):
    run, states, request = answered("Approve", {**RANGE, "require_approval": True})
    assert str(run.state) == "success", states
    assert "alaska-air 2026-02-02..2026-02-04" in request["subject"]
    assert request["defaults"] == ["Reject"]
    shown = labels(run)
    assert shown["approve_delete"].startswith("APPROVED by admin at ")
    assert shown["verify"].startswith("EXACT · ")
    report = read_report(reports_dir, run)
    assert (
        report["verdict"] == "EXACT"
        and report["approval"]["by"] == "admin"
        and report["approval"]["approved"]
    )
    before = report["before"]["totals"]
    body = request["body"]  # the approval page: what is deleted and rewritten, the drift, the guard
    assert f"| ClickHouse rows to delete (the range's rows) | {before['ch_rows']:,} |" in body
    assert f"| Postgres rows to rewrite (eligible conversations) | {before['pg_eligible']:,} |" in body
    assert f"| duplicate conversations | {before['duplicates']:,} | 0 |" in body
    assert "**Safety guard: passed**" in body and "Loss:" in body and "| 2026-02-03 |" in body
    (event,) = asset_events(run)
    assert event["verdict"] == "EXACT" and event["approval"].startswith("approved by admin")


def test_rejected_nothing_is_deleted_and_the_run_ends_rejected(incident, ch, airflow_db, reports_dir, capfd):
    before = table_snapshot(ch, DB)
    run, states, _ = answered("Reject", {**RANGE, "require_approval": True})
    assert table_snapshot(ch, DB) == before  # byte for byte, labeled_at included
    assert str(run.state) == "failed", states
    assert states["approve_delete"] == ["success"]  # a person answered: the question was handled
    assert states["delete_range"] == ["skipped"] and states["wait_for_mutations"] == ["skipped"]
    assert set(states["label_day"]) == {"skipped"} and states["verify"] == ["failed"]
    shown = labels(run)
    assert shown["approve_delete"].startswith("REJECTED by admin at ")
    assert shown["verify"].startswith("REJECTED by admin at ")
    assert "nothing deleted" in shown["verify"]
    report = read_report(reports_dir, run)
    assert report["verdict"] == "REJECTED" and report["ok"] is False
    assert report["approval"]["approved"] is False and report["approval"]["by"] == "admin"
    assert "nothing was deleted" in report["problems"][0] and "(unchanged)" in report["problems"][0]
    assert report["after"]["totals"]["ch_rows"] == report["before"]["totals"]["ch_rows"]
    out = "".join(capfd.readouterr())
    assert "REJECTED: the delete was rejected by admin" in out and "unchanged" in out
    assert asset_events(run) == []  # nothing was repaired: no event


def test_no_answer_in_time_is_a_rejection(incident, ch, airflow_db, reports_dir, monkeypatch):
    monkeypatch.setenv("LABEL_BACKFILL_APPROVAL_TIMEOUT_SECONDS", "2")  # read when the DAG file is parsed
    before = table_snapshot(ch, DB)
    run, states, _ = answered(None, {**RANGE, "require_approval": True})
    assert table_snapshot(ch, DB) == before
    assert str(run.state) == "failed" and states["delete_range"] == ["skipped"], states
    shown = labels(run)
    assert shown["approve_delete"] == "REJECTED: not answered within 2 s"
    report = read_report(reports_dir, run)
    assert report["verdict"] == "REJECTED" and report["approval"]["timed_out"] is True
