"""The Kubernetes day runner: one day of the backfill as a Kubernetes Job created from the live CronJob.

Its own module so that importing ``label_backfill.operators`` (every DAG parse) does not load the Kubernetes
client; ``label_backfill.operators.LabelDayKubernetesOperator`` still names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from label_backfill.k8s_job import day_labels, job_name_for_day
from label_backfill.k8s_operator import CronJobJobOperator
from label_backfill.naming import parse_day
from label_backfill.operators import DayRewriteOperator


class LabelDayKubernetesOperator(DayRewriteOperator, CronJobJobOperator):
    """Rewrite one day as a Kubernetes Job created from the live CronJob's ``jobTemplate``.

    Every attempt, in this order: wait for a turn; stop the day's Job left by an earlier try (a worker
    that died leaves its pod running) and wait until the Job and all its pods are gone; only then delete
    what is left of the day in ClickHouse; then create the new Job. So no pod of an earlier try can write
    after the delete. If the earlier pods do not go away within ``replace_timeout``, the attempt fails
    naming them and ClickHouse is not touched. A deferred attempt resumes in ``execute_complete``, which
    only reads the Job's outcome and logs.

    The Job's name (``label-<customer>-<day>``), labels (DAG, run, customer, day) and env (the job's three
    variables) are derived from the customer, the day and the task's context when the attempt runs; they
    are not arguments. The other arguments are :class:`CronJobJobOperator`'s, i.e. deployment settings
    (CronJob, container, namespace, connection, ``deferrable``, ``job_poll_interval``).

    :param ttl_seconds_after_finished: the Job is deleted this long after it finished (its logs were read
        by then; the CronJob's history limits do not apply, it has no owner reference).
    :param backoff_limit: 0: the job controller must never re-run a day's pod. A re-run would write the
        day again without the delete before it (duplicates); Airflow's retry of the task deletes first.
    """

    template_fields: Sequence[str] = (*CronJobJobOperator.template_fields, "day")
    _DERIVED = ("job_name", "job_env", "job_labels")

    def __init__(
        self,
        *,
        ttl_seconds_after_finished: int | None = 3600,
        backoff_limit: int | None = 0,
        **kwargs: Any,
    ) -> None:
        if given := [k for k in self._DERIVED if k in kwargs]:
            raise ValueError(
                f"{type(self).__name__} derives {', '.join(given)} from the customer, the day and the run"
            )
        super().__init__(
            job_name="",  # set per attempt by _derive_job
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            backoff_limit=backoff_limit,
            **kwargs,
        )

    def _derive_job(self, context: Any) -> None:
        day = parse_day(self.day, "day")
        self.job_name = job_name_for_day(self.customer, day)
        self.job_env = self.day_job_env()
        self.job_labels = day_labels(context["ti"].dag_id, context["run_id"], self.customer, day)

    def build_job_request_obj(self, context: Any = None) -> Any:
        self._derive_job(context)
        return super().build_job_request_obj(context)

    def execute(self, context: Any) -> Any:
        self.wait_for_turn(context)
        self._derive_job(context)
        self.stop_earlier_job()
        self.clear_day_before_write()
        return self.run_job(context)
