"""The embedded stack's day runner: the reference job in the worker (``LABEL_BACKFILL_JOB_RUNNER=local``).

The backfill DAG loads this module only when the deployment asks for the local runner; production runs each
day as a Kubernetes Job (``label_backfill.operators.LabelDayKubernetesOperator``). Both take the same
runner-neutral kwargs (the day and the plan's customer, database and guards) and give the job the same three
env vars (``label_backfill.backfill.day_job_env``).

Fault injection, for the demo, the UI test and the DAG tests (read when a day runs):
``LABEL_BACKFILL_LOCAL_FAIL_DAYS`` (``2026-02-03,...``) fail after writing one block on their first
``LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS`` (default 3) attempts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from label_backfill.chdb_lock import process_totals
from label_backfill.hooks import arrow_postgres, clickhouse_client, postgres_dsn
from label_backfill.operators import DayRewriteOperator

FAIL_DAYS_VAR = "LABEL_BACKFILL_LOCAL_FAIL_DAYS"
FAIL_ATTEMPTS_VAR = "LABEL_BACKFILL_LOCAL_FAIL_ATTEMPTS"


class InjectedFault(RuntimeError):
    """Raised by the local runner's documented fault injection (``LABEL_BACKFILL_LOCAL_FAIL_DAYS``)."""


@dataclasses.dataclass(frozen=True)
class FaultInjection:
    days: frozenset[str]
    attempts: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultInjection:
        env = os.environ if environ is None else environ
        days = frozenset(d.strip() for d in env.get(FAIL_DAYS_VAR, "").split(",") if d.strip())
        return cls(days=days, attempts=int(env.get(FAIL_ATTEMPTS_VAR, "3")))

    def fails(self, day: str, try_number: int) -> bool:
        return day in self.days and try_number <= self.attempts


class _FailAfterFirstBlock:
    """A ClickHouse client that writes one block, then fails: a job dying halfway through a day."""

    def __init__(self, client: Any, day: str) -> None:
        self._client, self._day, self._blocks = client, day, 0

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        if self._blocks >= 1:
            raise InjectedFault(f"injected failure for {self._day} after a partial write")
        self._blocks += 1
        return self._client.insert_arrow(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class LabelDayLocalOperator(DayRewriteOperator):
    """Rewrite one day with the reference job in the worker, through the job's own env-var contract.

    Every attempt: wait for a turn, delete what an earlier attempt of the day left, then run the job with
    the day's env (see :class:`DayRewriteOperator`).

    :param write_table: the table the job writes (``conversation_with_labels_d`` on a cluster).
    """

    template_fields: Sequence[str] = ("day",)

    def __init__(self, *, write_table: str = "conversation_with_labels", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.write_table = write_table

    def execute(self, context: Any) -> None:
        from label_conversations import JobConfig, run

        self.wait_for_turn(context)
        client = clickhouse_client(self.clickhouse_conn_id)
        self.clear_day_before_write(client)
        config = dataclasses.replace(JobConfig.from_env(self.day_job_env()), table=self.write_table)
        try_number = context["ti"].try_number
        if FaultInjection.from_env().fails(self.day, try_number):
            self.log.warning("fault injection: %s fails after a partial write (try %s)", self.day, try_number)
            client, config = (
                _FailAfterFirstBlock(client, self.day),
                dataclasses.replace(config, slice_hours=1),
            )
        with arrow_postgres(postgres_dsn(self.postgres_conn_id)) as pg:
            result = run(config, pg, client)
        self.log.info("%s: wrote %s rows (job run %s)", self.day, result.rows, result.run_id)
        self.log.info("chdb lock: %s", process_totals())
