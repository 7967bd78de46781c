"""Alerts through Airflow's notifiers, when a run ends badly: the drift check's ``report`` or ``alert`` task
failing, and a backfill's ``verify`` failing (NOT EXACT, NOT REPAIRED, NOT VERIFIED, or nothing deleted
because ``validate`` or ``preflight`` refused).

The message is built here from the run's report (``build_alert``: customers, day ranges, verdict, problems,
the report's URL) and sent by the providers' notifiers the deployment configures (``channels``):

- ``LABEL_BACKFILL_ALERT_EMAILS`` (comma list): ``SmtpNotifier`` of the smtp provider, through the Airflow
  connection ``LABEL_BACKFILL_SMTP_CONN_ID`` (default ``smtp_default``; its ``from_email`` extra is the
  sender);
- ``LABEL_BACKFILL_SLACK_CONN_ID``: ``SlackWebhookNotifier`` of the slack provider (an Incoming Webhook
  connection), when that provider is installed; otherwise the alert logs an error saying so and still
  sends the e-mail.

With neither setting the DAGs attach no callback. Nothing here runs at DAG parse time but ``on_failure``
(reads the settings already loaded); the report is read when the callback runs.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.util
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import BaseNotifier

from label_backfill.naming import contiguous_ranges
from label_backfill.settings import BACKFILL_DAG_ID, DRIFT_DAG_ID, Settings

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "[label-backfill]"


@dataclass(frozen=True)
class Alert:
    """One alert: a subject line, the lines of its body, the report's URL (None: no report was written)."""

    subject: str
    lines: list[str] = field(default_factory=list)
    report: str | None = None

    def text(self) -> str:
        return "\n".join([self.subject, "", *self.lines])

    def html(self) -> str:
        items = "".join(f"<li>{html.escape(line)}</li>" for line in self.lines)
        return f"<p><b>{html.escape(self.subject)}</b></p><ul>{items}</ul>"


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def _ranges(days: list[str]) -> str:
    ranges = contiguous_ranges([dt.date.fromisoformat(d) for d in days])
    return ", ".join(str(r.first) if r.first == r.last else str(r) for r in ranges)


def backfill_alert(
    document: Mapping[str, Any] | None,
    report: str | None,
    params: Mapping[str, Any],
    run_id: str,
    error: object = None,
) -> Alert:
    """The alert of a backfill run whose ``verify`` failed, from its report (None: none was written).

    :param params: the run's params (customer and days when there is no report).
    :param error: the failed task's exception.
    """
    doc = document or {}
    customer = doc.get("customer") or params.get("customer")
    first, last = (
        doc.get("start_date") or params.get("start_date"),
        doc.get("end_date") or params.get("end_date"),
    )
    verdict = doc.get("verdict") or "FAILED"
    lines = [
        f"customer: {customer}",
        f"days: {first}..{last} (UTC days of conversation start, inclusive)",
        f"verdict: {verdict}" + (" (dry run)" if doc.get("dry_run") else ""),
    ]
    if doc.get("failed_days"):
        lines.append(f"failed day jobs: {_ranges(doc['failed_days'])}")
    not_ok = [d["date"] for d in doc.get("days") or [] if d.get("ok") is False]
    if not_ok:
        lines.append(f"days not equal to Postgres: {_ranges(not_ok)}")
    lines += [f"problem: {_one_line(p)}" for p in doc.get("problems") or []]
    if error is not None and not doc.get("problems"):
        lines.append(f"error: {_one_line(error)}")
    lines.append(
        f"report: {report}" if document is not None else "report: none was written (see the task log)"
    )
    lines.append(f"run: {BACKFILL_DAG_ID} {run_id}")
    return Alert(
        f"{SUBJECT_PREFIX} backfill {customer} {first}..{last}: {verdict}",
        lines,
        report if document is not None else None,
    )


def drift_alert(
    document: Mapping[str, Any] | None, report: str | None, run_id: str, error: object = None
) -> Alert:
    """The alert of a drift check whose ``report`` or ``alert`` task failed, from its report."""
    from label_backfill.drift import _verdict

    if document is None:
        return Alert(
            f"{SUBJECT_PREFIX} label drift check: NO REPORT",
            [
                f"error: {_one_line(error)}",
                "report: none was written (see the task log)",
                f"run: {DRIFT_DAG_ID} {run_id}",
            ],
        )
    window = (
        f"{document['start_date']}..{document['end_date']}" if document.get("start_date") else "no window"
    )
    failing = sorted(
        c["customer"] for c in document.get("customers", []) if c["status"] not in ("clean", "no_data")
    )
    shown = ", ".join(failing[:5]) + (f" and {len(failing) - 5} more" if len(failing) > 5 else "")
    verdict = _verdict(dict(document))
    lines = [
        f"days: {window} (UTC days of conversation start)",
        f"verdict: {verdict}",
        *(f"problem: {_one_line(p)}" for p in document.get("problems") or []),
    ]
    if not document.get("problems") and error is not None:
        lines.append(f"error: {_one_line(error)}")
    note = (document.get("repairs") or {}).get("note")
    if note:
        lines.append(f"repairs: {note}")
    lines += [f"report: {report}", f"run: {DRIFT_DAG_ID} {run_id}"]
    return Alert(
        f"{SUBJECT_PREFIX} label drift {window}: {verdict}" + (f" ({shown})" if shown else ""), lines, report
    )


def build_alert(
    dag_id: str, context: Mapping[str, Any], report_dir: str, report_conn_id: str | None
) -> Alert:
    """The alert of a failed task from its context: reads the run's report from the store."""
    from label_backfill.reports import read_report, report_url

    run_id = context["run_id"]
    try:
        document = read_report(report_dir, dag_id, run_id, report_conn_id)
    except Exception as err:  # the store is down: still alert, saying so
        log.error("could not read the report for the alert: %s", err)
        document = None
    url = report_url(report_dir, dag_id, run_id)
    if dag_id == DRIFT_DAG_ID:
        return drift_alert(document, url, run_id, context.get("exception"))
    return backfill_alert(document, url, context.get("params") or {}, run_id, context.get("exception"))


def slack_available() -> bool:
    return importlib.util.find_spec("airflow.providers.slack") is not None


def channels(settings: Settings, alert: Alert) -> list[tuple[str, Callable[[Mapping[str, Any]], None]]]:
    """The configured notifiers for ``alert``, each as (name, notify(context)).

    ``notify`` is called directly, not the notifier itself: calling it would render the message as a Jinja
    template, and problem lines may hold text from the databases (conversation ids)."""
    out: list[tuple[str, Callable[[Mapping[str, Any]], None]]] = []
    if settings.alert_emails:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        email = SmtpNotifier(
            to=list(settings.alert_emails),
            subject=alert.subject,
            html_content=alert.html(),
            smtp_conn_id=settings.smtp_conn_id,
        )
        out.append((f"e-mail to {', '.join(settings.alert_emails)}", email.notify))
    if settings.slack_conn_id:
        if not slack_available():
            log.error(
                "LABEL_BACKFILL_SLACK_CONN_ID=%s is set but apache-airflow-providers-slack is not installed: "
                "no Slack alert (install the provider, or unset the setting)",
                settings.slack_conn_id,
            )
        else:
            from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

            slack = SlackWebhookNotifier(slack_webhook_conn_id=settings.slack_conn_id, text=alert.text())
            out.append((f"Slack ({settings.slack_conn_id})", slack.notify))
    return out


class LabelAlertNotifier(BaseNotifier):
    """``on_failure_callback``: builds the alert from the run's report and sends it on every channel."""

    def __init__(self, dag_id: str, settings: Settings) -> None:
        super().__init__()
        self.dag_id = dag_id
        self.settings = settings

    def notify(self, context: Any) -> None:
        alert = build_alert(self.dag_id, context, self.settings.report_dir, self.settings.report_conn_id)
        failed = []
        for name, send in channels(self.settings, alert):
            try:
                send(context)
                log.info("alert sent by %s: %s", name, alert.subject)
            except Exception as err:  # one channel down must not silence the others
                log.exception("alert by %s failed", name)
                failed.append(f"{name}: {err}")
        if failed:
            raise RuntimeError("alert not sent: " + "; ".join(failed))


def on_failure(settings: Settings, dag_id: str) -> list[Any]:
    """The ``on_failure_callback`` of the tasks whose failure must alert: empty when no channel is set."""
    if not settings.alert_emails and not settings.slack_conn_id:
        return []
    return [LabelAlertNotifier(dag_id, settings)]
