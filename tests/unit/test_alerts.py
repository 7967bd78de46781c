"""Alert messages and channels, from the deployment settings (no server: see tests/integration/test_alerts.py)."""

from __future__ import annotations

import logging

import pytest
from label_backfill import alerts
from label_backfill.settings import load

pytestmark = pytest.mark.unit

URL = "s3://reports/prod/conversation_labels_backfill/manual__2026-02-15T04-00-00-00-00.json"


def test_a_backfill_alert_names_customer_days_verdict_problems_and_report():
    document = {
        "customer": "alaska-air",
        "start_date": "2026-02-01",
        "end_date": "2026-02-05",
        "verdict": "NOT EXACT",
        "problems": ["day job(s) failed: 2026-02-03", "stale remain on 2026-02-04 (7)"],
        "failed_days": ["2026-02-03"],
        "days": [{"date": f"2026-02-0{i}", "ok": i not in (3, 4)} for i in range(1, 6)],
    }
    alert = alerts.backfill_alert(document, URL, {}, "manual__2026-02-15T04:00:00+00:00", "ignored")
    assert alert.subject == "[label-backfill] backfill alaska-air 2026-02-01..2026-02-05: NOT EXACT"
    text = alert.text()
    for expected in (
        "customer: alaska-air",
        "days: 2026-02-01..2026-02-05 (UTC days of conversation start, inclusive)",
        "verdict: NOT EXACT",
        "failed day jobs: 2026-02-03",
        "days not equal to Postgres: 2026-02-03..2026-02-04",
        "problem: stale remain on 2026-02-04 (7)",
        f"report: {URL}",
    ):
        assert expected in text
    assert "ignored" not in text  # the report's problems say it better than the exception


def test_without_a_report_the_alert_says_so_and_gives_the_error():
    alert = alerts.backfill_alert(
        None,
        URL,
        {"customer": "nobody-here", "start_date": "2026-02-01", "end_date": "2026-02-02"},
        "r1",
        "nothing was deleted: validate refused the run: invalid input: customer: no profile 'nobody-here'",
    )
    assert alert.subject.endswith("backfill nobody-here 2026-02-01..2026-02-02: FAILED")
    assert "error: nothing was deleted: validate refused the run" in alert.text()
    assert alert.report is None and "report: none was written" in alert.text()
    assert "&#x27;nobody-here&#x27;" in alert.html()  # escaped for the e-mail's HTML


def test_a_drift_alert_names_each_failing_customer_and_the_report():
    document = {
        "start_date": "2026-02-01",
        "end_date": "2026-02-14",
        "ok": False,
        "not_checked_reason": "",
        "problems": [
            "horizon-air: drift on 2026-02-03..2026-02-04",
            "ghost-air: missing_database (no table)",
        ],
        "customers": [
            {"customer": "horizon-air", "status": "drift"},
            {"customer": "ghost-air", "status": "missing_database"},
            {"customer": "alaska-air", "status": "clean"},
        ],
        "repairs": {"note": "auto_repair is off: nothing triggered."},
    }
    alert = alerts.drift_alert(document, URL, "scheduled__2026-02-15T04:00:00+00:00")
    assert alert.subject == (
        "[label-backfill] label drift 2026-02-01..2026-02-14: INCOMPLETE, DRIFT (ghost-air, horizon-air)"
    )
    assert "problem: horizon-air: drift on 2026-02-03..2026-02-04" in alert.text()
    assert "problem: ghost-air: missing_database (no table)" in alert.text()
    assert f"report: {URL}" in alert.text() and "alaska-air" not in alert.subject
    nothing = alerts.drift_alert(None, URL, "r1", RuntimeError("store unreachable"))
    assert "NO REPORT" in nothing.subject and "error: store unreachable" in nothing.text()


def test_no_channel_configured_attaches_no_callback():
    assert alerts.on_failure(load({}), "conversation_labels_backfill") == []
    (notifier,) = alerts.on_failure(load({"LABEL_BACKFILL_ALERT_EMAILS": "a@x.test"}), "dag")
    assert isinstance(notifier, alerts.LabelAlertNotifier)


def test_alert_settings_are_read_and_checked():
    settings = load({"LABEL_BACKFILL_ALERT_EMAILS": " a@x.test, b@y.test;c@z.test ,"})
    assert settings.alert_emails == ("a@x.test", "b@y.test", "c@z.test")
    assert settings.smtp_conn_id == "smtp_default" and settings.slack_conn_id is None
    with pytest.raises(ValueError, match="LABEL_BACKFILL_ALERT_EMAILS: 'oncall' is not an e-mail address"):
        load({"LABEL_BACKFILL_ALERT_EMAILS": "oncall"})


@pytest.mark.skipif(alerts.slack_available(), reason="the Slack provider is installed here")
def test_slack_without_its_provider_logs_why_and_still_sends_the_email(caplog):
    settings = load(
        {"LABEL_BACKFILL_ALERT_EMAILS": "a@x.test", "LABEL_BACKFILL_SLACK_CONN_ID": "slack_alerts"}
    )
    with caplog.at_level(logging.ERROR, logger="label_backfill.alerts"):
        sent = alerts.channels(settings, alerts.Alert("subject", ["line"]))
    assert [name for name, _ in sent] == ["e-mail to a@x.test"]
    assert "apache-airflow-providers-slack is not installed: no Slack alert" in caplog.text
