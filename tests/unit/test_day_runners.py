"""The day runners take runner-neutral kwargs; the Kubernetes one derives its Job from them and the run."""

from __future__ import annotations

import datetime as dt
import types

import pytest
from label_backfill.backfill import BackfillPlan, day_job_env, day_job_kwargs, validate_params
from label_backfill.k8s_job import day_labels
from label_backfill.operators import LabelDayKubernetesOperator

pytestmark = pytest.mark.unit

RUN_ID = "manual__2026-02-20T08:00:00+00:00"
PARAMS = {
    "customer": "alaska-air",
    "start_date": "2026-02-01",
    "end_date": "2026-02-03",
    "dry_run": False,
    "max_parallel_days": 2,
    "max_days": 62,
    "allow_empty_source": True,
    "max_delete_ratio": 2.0,
    "sample_size": 20,
}
DAY_KWARGS = {"day", "customer", "database", "allow_empty_source", "max_parallel_days"}
DEPLOYMENT = {"cronjob_name": "cron-label-conversations", "container_name": "label-conversations"}


def plan() -> BackfillPlan:
    validated = validate_params(PARAMS, dt.date(2026, 2, 20))
    return BackfillPlan.from_dict({**validated.to_dict(), "database": "alaska_air_us_east_1"})


def context() -> dict:
    ti = types.SimpleNamespace(dag_id="conversation_labels_backfill", run_id=RUN_ID, map_index=1)
    return {"ti": ti, "run_id": RUN_ID}


def test_mapped_kwargs_are_the_day_and_the_plan_nothing_of_a_runner():
    kwargs = day_job_kwargs(plan())
    assert [k["day"] for k in kwargs] == ["2026-02-01", "2026-02-02", "2026-02-03"]
    assert all(set(k) == DAY_KWARGS for k in kwargs)
    assert kwargs[1] == {
        "day": "2026-02-02",
        "customer": "alaska-air",
        "database": "alaska_air_us_east_1",
        "allow_empty_source": True,
        "max_parallel_days": 2,
    }


def test_the_job_env_is_one_utc_day_of_one_customer():
    assert day_job_env("alaska-air", dt.date(2026, 2, 28)) == {
        "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START": "2026-02-28T00:00:00Z",
        "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END": "2026-03-01T00:00:00Z",
        "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE": "alaska-air",
    }


def test_the_kubernetes_runner_derives_name_labels_and_env_from_the_customer_day_and_run():
    op = LabelDayKubernetesOperator(task_id="label_day", **day_job_kwargs(plan())[1], **DEPLOYMENT)
    op._derive_job(context())
    assert op.job_name == "label-alaska-air-2026-02-02"
    assert op.job_labels == day_labels(
        "conversation_labels_backfill", RUN_ID, "alaska-air", dt.date(2026, 2, 2)
    )
    assert op.job_env == day_job_env("alaska-air", dt.date(2026, 2, 2))


def test_kubernetes_defaults_live_on_the_operator():
    op = LabelDayKubernetesOperator(task_id="label_day", **day_job_kwargs(plan())[0], **DEPLOYMENT)
    assert (op.ttl_seconds_after_finished, op.backoff_limit) == (3600, 0)
    assert op.wait_until_job_complete and op.get_logs


@pytest.mark.parametrize("derived", ["job_name", "job_env", "job_labels"])
def test_the_kubernetes_runner_refuses_what_it_derives(derived):
    with pytest.raises(ValueError, match=f"derives {derived}"):
        LabelDayKubernetesOperator(
            task_id="label_day", **day_job_kwargs(plan())[0], **DEPLOYMENT, **{derived: "x"}
        )


def test_the_local_runner_takes_the_same_kwargs_and_nothing_it_would_ignore():
    from label_backfill.dev.local_runner import LabelDayLocalOperator

    op = LabelDayLocalOperator(task_id="label_day", **day_job_kwargs(plan())[2])
    assert (op.day, op.customer, op.database, op.allow_empty_source, op.max_parallel_days) == (
        "2026-02-03",
        "alaska-air",
        "alaska_air_us_east_1",
        True,
        2,
    )
    assert op.day_job_env() == day_job_env("alaska-air", dt.date(2026, 2, 3))
    with pytest.raises(TypeError, match="Invalid arguments"):
        LabelDayLocalOperator(task_id="label_day", **day_job_kwargs(plan())[2], job_name="label-x")
