"""Alerts through Airflow's notifiers: a real SMTP server (aiosmtpd) on 127.0.0.1 receives the e-mail the
smtp provider's SmtpNotifier sends when the drift check fails and when a backfill is not exact."""

from __future__ import annotations

import datetime as dt
import email
import html
import json
import socket
from email.message import Message

import pytest

from tests.crafted import add_conversations, at, label_range, make_customer
from tests.helpers import load_dag, report_name, run_dag

pytestmark = pytest.mark.integration

TO = ["oncall@example.test", "data-team@example.test"]
SENDER = "label-backfill@example.test"


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


def body(message: Message) -> str:
    parts = [p for p in message.walk() if p.get_content_type() == "text/html"]
    return html.unescape("\n".join(p.get_payload(decode=True).decode() for p in parts))


@pytest.fixture
def inbox(monkeypatch):
    """A local SMTP server, the Airflow connection to it, and the alert settings naming it."""
    from aiosmtpd.controller import Controller

    with socket.socket() as s:  # a free port (aiosmtpd 1.4 checks its server by connecting to the port)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    connection = {
        "conn_type": "smtp",
        "host": "127.0.0.1",
        "port": port,
        "extra": {
            "from_email": SENDER,
            "disable_ssl": True,
            "disable_tls": True,
            "timeout": 10,
            "retry_limit": 0,
        },
    }
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SMTP", json.dumps(connection))
    monkeypatch.setenv("LABEL_BACKFILL_SMTP_CONN_ID", "alerts_smtp")
    monkeypatch.setenv("LABEL_BACKFILL_ALERT_EMAILS", ", ".join(TO))
    try:
        yield handler
    finally:
        controller.stop()


def one_customer(pg, ch, customer: str) -> str:
    """A customer with five conversations a day on 2026-02-02..2026-02-04, labeled as the cron would."""
    database = make_customer(pg, ch, customer)
    rows = [
        (f"{customer}-{day}-{i}", i % 3, "cco", "voice", at(day, f"0{i}:00:00"), at(day, "10:00:00"))
        for day in ("2026-02-02", "2026-02-03", "2026-02-04")
        for i in range(5)
    ]
    add_conversations(pg, customer, rows)
    label_range(pg, ch, customer, at("2026-02-02", "00:00:00"), at("2026-02-05", "00:00:00"))
    return database


def test_a_failing_drift_check_sends_one_email_naming_customers_days_verdict_and_report(
    pg, ch, airflow_db, reports_dir, inbox
):
    one_customer(pg, ch, "alert-air")
    with pg.cursor() as cur:  # drift on 2026-02-03 only
        cur.execute(
            "UPDATE conversations SET usecase_id = 'cargo' WHERE customer_id = 'alert-air' "
            "AND started_at >= '2026-02-03' AND started_at < '2026-02-04'"
        )
    pg.commit()
    dag = load_dag("conversation_labels_drift_check")
    run = dag.test(
        logical_date=dt.datetime(2026, 2, 5, 4, tzinfo=dt.UTC),
        run_conf={"customers": ["alert-air", "nobody-here"], "lookback_days": 3},
    )
    assert str(run.state) == "failed"
    assert len(inbox.messages) == 1, [m["Subject"] for _, m in inbox.messages]
    recipients, message = inbox.messages[0]
    assert sorted(recipients) == sorted(TO) and message["From"] == SENDER
    report = reports_dir / "conversation_labels_drift_check" / report_name(run.run_id)
    assert report.exists()
    subject, text = message["Subject"], body(message)
    assert (
        "label drift 2026-02-02..2026-02-04" in subject
        and "alert-air" in subject
        and "nobody-here" in subject
    )
    assert "verdict: INCOMPLETE, DRIFT" in text
    assert "alert-air: drift on 2026-02-03" in text
    assert "nobody-here: no_profile (no profile in Postgres)" in text
    assert f"report: file://{report}" in text


def test_a_backfill_that_is_not_exact_sends_one_email_naming_the_days_verdict_and_report(
    pg, ch, airflow_db, reports_dir, inbox, monkeypatch
):
    one_customer(pg, ch, "alert-air")
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_DAYS", "2026-02-03")
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS", "9")  # the day fails every attempt
    run, states = run_dag(
        "conversation_labels_backfill",
        {"customer": "alert-air", "start_date": "2026-02-02", "end_date": "2026-02-04"},
    )
    assert str(run.state) == "failed" and states["verify"] == ["failed"]
    assert len(inbox.messages) == 1, [m["Subject"] for _, m in inbox.messages]
    recipients, message = inbox.messages[0]
    assert sorted(recipients) == sorted(TO)
    report = reports_dir / "conversation_labels_backfill" / report_name(run.run_id)
    assert json.loads(report.read_text())["verdict"] == "NOT EXACT"
    subject, text = message["Subject"], body(message)
    assert subject == "[label-backfill] backfill alert-air 2026-02-02..2026-02-04: NOT EXACT"
    assert "customer: alert-air" in text and "verdict: NOT EXACT" in text
    assert "failed day jobs: 2026-02-03" in text
    assert "days not equal to Postgres: 2026-02-03" in text
    assert f"report: file://{report}" in text


def test_a_refused_backfill_alerts_once_with_the_refusal(pg, ch, airflow_db, inbox):
    run, states = run_dag(
        "conversation_labels_backfill",
        {"customer": "nobody-here", "start_date": "2026-02-02", "end_date": "2026-02-04"},
    )
    assert str(run.state) == "failed" and states["validate"] == ["failed"]
    assert len(inbox.messages) == 1
    _, message = inbox.messages[0]
    text = body(message)
    assert message["Subject"] == "[label-backfill] backfill nobody-here 2026-02-02..2026-02-04: FAILED"
    assert "nothing was deleted: validate refused the run: invalid input: customer: no profile" in text
    assert "report: none was written" in text
