"""Deployment settings, read from ``LABEL_BACKFILL_*`` environment variables (documented in README).

Reading the environment is all that happens at DAG parse time: no database or API call.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from label_backfill.naming import validate_identifier
from label_backfill.reports import check_report_dir

POSTGRES_CONN_ID = "postgres_conversations"
CLICKHOUSE_CONN_ID = "clickhouse_conversations"
KUBERNETES_CONN_ID = "kubernetes_default"
# A Postgres database the package may write: the per-customer leases (label_backfill.leases)
STATE_CONN_ID = "label_backfill_state"
LABEL_TABLE = "conversation_with_labels"
BACKFILL_DAG_ID = "conversation_labels_backfill"
DRIFT_DAG_ID = "conversation_labels_drift_check"
FLEET_DAG_ID = "conversation_labels_fleet_backfill"


@dataclass(frozen=True)
class Settings:
    job_runner: str
    clickhouse_cluster: str | None
    k8s_namespace: str
    cronjob: str
    k8s_container: str
    report_dir: str
    report_conn_id: str | None
    drift_schedule: str
    deferrable: bool
    mutation_timeout_seconds: int
    day_retries: int
    retry_delay_seconds: int
    k8s_poll_seconds: float
    alert_emails: tuple[str, ...] = ()
    smtp_conn_id: str = "smtp_default"
    slack_conn_id: str | None = None
    approval_timeout_seconds: int = 86400
    lease_wait_seconds: int = 21600
    lease_poke_seconds: int = 30
    max_active_backfills: int = 16

    @property
    def read_table(self) -> str:
        """Table the comparison reads: the Distributed table on a cluster, else the local one."""
        from label_backfill.clickhouse import read_table_name  # the one rule (clickhouse imports this module)

        return read_table_name(self.clickhouse_cluster)


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _emails(value: str) -> tuple[str, ...]:
    """``LABEL_BACKFILL_ALERT_EMAILS``: addresses separated by commas (or semicolons)."""
    emails = tuple(e.strip() for e in value.replace(";", ",").split(",") if e.strip())
    bad = [e for e in emails if e.count("@") != 1 or " " in e]
    if bad:
        raise ValueError(f"LABEL_BACKFILL_ALERT_EMAILS: {', '.join(map(repr, bad))} is not an e-mail address")
    return emails


def load(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the settings; raise ``ValueError`` naming the variable on a bad value."""
    env = os.environ if environ is None else environ
    runner = env.get("LABEL_BACKFILL_JOB_RUNNER", "kubernetes").strip() or "kubernetes"
    if runner not in {"kubernetes", "local"}:
        raise ValueError(f"LABEL_BACKFILL_JOB_RUNNER must be 'kubernetes' or 'local', not {runner!r}")
    cluster = env.get("LABEL_BACKFILL_CLICKHOUSE_CLUSTER", "").strip() or None
    if cluster:
        validate_identifier(cluster, "LABEL_BACKFILL_CLICKHOUSE_CLUSTER")
    approval_timeout = int(env.get("LABEL_BACKFILL_APPROVAL_TIMEOUT_SECONDS", "86400"))
    if approval_timeout < 1:  # 0 would mean "wait forever": the customer's lease would never be released
        raise ValueError(
            f"LABEL_BACKFILL_APPROVAL_TIMEOUT_SECONDS must be at least 1, not {approval_timeout}"
        )
    lease_wait = int(env.get("LABEL_BACKFILL_LEASE_WAIT_SECONDS", "21600"))
    if lease_wait < 0:
        raise ValueError(
            f"LABEL_BACKFILL_LEASE_WAIT_SECONDS must be 0 (refuse at once) or more, not {lease_wait}"
        )
    lease_poke = int(env.get("LABEL_BACKFILL_LEASE_POKE_SECONDS", "30"))
    if lease_poke < 1:
        raise ValueError(f"LABEL_BACKFILL_LEASE_POKE_SECONDS must be at least 1, not {lease_poke}")
    max_active = int(env.get("LABEL_BACKFILL_MAX_ACTIVE_RUNS", "16"))
    if max_active < 1:
        raise ValueError(f"LABEL_BACKFILL_MAX_ACTIVE_RUNS must be at least 1, not {max_active}")
    return Settings(
        job_runner=runner,
        clickhouse_cluster=cluster,
        k8s_namespace=env.get("LABEL_BACKFILL_K8S_NAMESPACE", "default").strip() or "default",
        cronjob=env.get("LABEL_BACKFILL_CRONJOB", "cron-label-conversations").strip()
        or "cron-label-conversations",
        k8s_container=env.get("LABEL_BACKFILL_K8S_CONTAINER", "label-conversations").strip()
        or "label-conversations",
        report_dir=check_report_dir(env.get("LABEL_BACKFILL_REPORT_DIR", "./reports").strip() or "./reports"),
        report_conn_id=env.get("LABEL_BACKFILL_REPORT_CONN_ID", "").strip() or None,
        drift_schedule=env.get("LABEL_BACKFILL_DRIFT_SCHEDULE", "0 4 * * *").strip() or "0 4 * * *",
        deferrable=_flag(env.get("LABEL_BACKFILL_DEFERRABLE", "false")),
        mutation_timeout_seconds=int(env.get("LABEL_BACKFILL_MUTATION_TIMEOUT_SECONDS", "3600")),
        day_retries=int(env.get("LABEL_BACKFILL_DAY_RETRIES", "2")),
        retry_delay_seconds=int(env.get("LABEL_BACKFILL_RETRY_DELAY_SECONDS", "60")),
        k8s_poll_seconds=float(env.get("LABEL_BACKFILL_K8S_POLL_SECONDS", "10")),
        alert_emails=_emails(env.get("LABEL_BACKFILL_ALERT_EMAILS", "")),
        smtp_conn_id=env.get("LABEL_BACKFILL_SMTP_CONN_ID", "").strip() or "smtp_default",
        slack_conn_id=env.get("LABEL_BACKFILL_SLACK_CONN_ID", "").strip() or None,
        approval_timeout_seconds=approval_timeout,
        lease_wait_seconds=lease_wait,
        lease_poke_seconds=lease_poke,
        max_active_backfills=max_active,
    )
