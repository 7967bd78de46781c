"""LabelDayKubernetesOperator on the fake Kubernetes API and the real databases: no write after the delete.

An earlier try of the day created its Job, then its worker died (no ``on_kill``): the pod runs on and will
write the rows it read from Postgres before the day was corrected. The next try must stop that Job and wait
until its pod is gone, then delete the day in ClickHouse, then create its own Job.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import types
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.sdk.bases.operator import ExecutorSafeguard
from kubernetes.client import ApiClient
from label_backfill.clickhouse import LabelTable
from label_backfill.k8s_job import job_name_for_day, label_value
from label_backfill.operators import LabelDayKubernetesOperator

from tests.crafted import add_conversations, at, label_range, make_customer
from tests.fakes.kube_api import (
    CONTAINER_NAME,
    CRONJOB_NAME,
    FakeKubernetes,
    JobOutcome,
    label_conversations_cronjob,
)
from tests.helpers import table_snapshot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CUSTOMER = "k8s-order-co"
DAY = dt.date(2026, 3, 10)
JOB_NAME = job_name_for_day(CUSTOMER, DAY)
RUN_ID = "manual__2026-03-20T08:00:00+00:00"
ENV_START = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
ENV_END = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
ENV_CUSTOMER = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"
REASSIGNED = ("o000", "o002", "o004", "o006")  # a0 -> a1 in Postgres while the old pod holds a0
OLD_POD_WRITE_DELAY = 1.5


class StandInTaskInstance:
    """What the day operator reads from a task instance (ids, try number, sibling states), and its XComs."""

    def __init__(self, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id = "conversation_labels_backfill", "label_day", RUN_ID
        self.try_number, self.map_index = try_number, 0
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def get_task_states(self, **_: Any) -> dict[str, dict[str, str]]:
        return {self.run_id: {}}  # no other day is running


def task_context(ti: StandInTaskInstance) -> dict[str, Any]:
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "dag": types.SimpleNamespace(dag_id=ti.dag_id),
    }


def day_operator(database: str, **kwargs: Any) -> LabelDayKubernetesOperator:
    return LabelDayKubernetesOperator(
        task_id="label_day",
        customer=CUSTOMER,
        database=database,
        day=DAY.isoformat(),
        cronjob_name=CRONJOB_NAME,
        container_name=CONTAINER_NAME,
        job_poll_interval=0.1,
        pod_discovery_timeout=10,
        **kwargs,
    )


async def first_event(trigger: Any) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(run(), timeout=20)


def main_env(job: dict) -> dict[str, str]:
    container = next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == CONTAINER_NAME)
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def try_of(job: dict) -> int:
    return int(job["spec"]["template"]["metadata"]["labels"]["try_number"])


# --- the independent oracle: plain SQL on both sides, every physical ClickHouse row (no FINAL) ----------


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def postgres_day(pg: Any, day: dt.date) -> list[tuple]:
    """The eligible conversations starting on ``day``, as the data contract defines them."""
    rows = pg.execute(
        """
        SELECT c.conversation_id, c.agent_user_id, c.usecase_id, c.source, c.started_at, c.ended_at
        FROM conversations c JOIN users u ON u.user_id = c.agent_user_id
        WHERE c.customer_id = %s AND NOT u.is_dev_user AND c.ended_at IS NOT NULL
          AND c.source IN ('voice', 'chat') AND c.started_at >= %s AND c.started_at < %s
        """,
        (CUSTOMER, at(day.isoformat(), "00:00:00"), at((day + dt.timedelta(days=1)).isoformat(), "00:00:00")),
    ).fetchall()
    return sorted((*r[:4], _naive_utc(r[4]), _naive_utc(r[5])) for r in rows)


def clickhouse_day(ch: Any, database: str, day: dt.date) -> list[tuple]:
    rows = ch.query(
        f"SELECT conversation_id, agent_user_id, usecase_id, toString(source), conversation_start_time, "
        f"conversation_end_time FROM {database}.conversation_with_labels "
        "WHERE customer_id = {c:String} AND toDate(conversation_start_time) = {d:Date}",
        parameters={"c": CUSTOMER, "d": day},
    ).result_rows
    return sorted((*r[:4], _naive_utc(r[4]), _naive_utc(r[5])) for r in rows)


def clickhouse_other_days(ch: Any, database: str) -> list[tuple]:
    return ch.query(
        f"SELECT * FROM {database}.conversation_with_labels "
        "WHERE toDate(conversation_start_time) != {d:Date} ORDER BY conversation_id, labeled_at",
        parameters={"d": DAY},
    ).result_rows


# --- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _allow_execute_outside_task_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


@pytest.fixture
def day_database(stack, pg, ch) -> str:
    """Three days of a small customer, ClickHouse labelled from Postgres (so the day holds rows to delete)."""
    database = make_customer(pg, ch, CUSTOMER, dev_agents=(2,))
    rows = [
        (
            f"o{i:03d}",
            i % 2,
            ("reservations", "cargo")[i % 2],
            ("voice", "chat")[i % 2],
            at(DAY.isoformat(), f"{i % 24:02d}:{i % 60:02d}:07"),
            at(DAY.isoformat(), f"{i % 24:02d}:59:59"),
        )
        for i in range(40)
    ]
    rows += [
        ("x-email", 0, "cco", "email", at(DAY.isoformat()), at(DAY.isoformat(), "13:00:00")),
        ("x-dev", 2, "cco", "voice", at(DAY.isoformat()), at(DAY.isoformat(), "13:00:00")),
        ("x-open", 0, "cco", "voice", at(DAY.isoformat()), None),
        ("before", 0, "cco", "voice", at("2026-03-09", "23:59:59"), at("2026-03-10", "00:30:00")),
        ("after", 1, "cco", "chat", at("2026-03-11", "00:00:00"), at("2026-03-11", "00:10:00")),
    ]
    add_conversations(pg, CUSTOMER, rows)
    assert label_range(pg, ch, CUSTOMER, at("2026-03-09", "00:00:00"), at("2026-03-12", "00:00:00")) == 42
    return database


@pytest.fixture
def slow_pods(fake_kube: FakeKubernetes) -> FakeKubernetes:
    """The CronJob's pods get the API server's default 30 s to terminate: a deleted pod finishes its work."""
    fake_kube.add_cronjob(label_conversations_cronjob(termination_grace_period=30))
    return fake_kube


@pytest.fixture
def clickhouse_deletes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """("delete" when a ClickHouse delete starts, "deleted" when its mutation is done, monotonic time)."""
    calls: list[tuple[str, float]] = []
    delete_range, wait = LabelTable.delete_range, LabelTable.wait

    def recording_delete(self: LabelTable, *args: Any, **kwargs: Any) -> Any:
        calls.append(("delete", time.monotonic()))
        return delete_range(self, *args, **kwargs)

    def recording_wait(self: LabelTable, *args: Any, **kwargs: Any) -> None:
        wait(self, *args, **kwargs)
        calls.append(("deleted", time.monotonic()))

    monkeypatch.setattr(LabelTable, "delete_range", recording_delete)
    monkeypatch.setattr(LabelTable, "wait", recording_wait)
    return calls


class DelayedWrites:
    """The old pod's ClickHouse client: its rows were read from Postgres, the write comes later."""

    def __init__(self, client: Any, delay: float) -> None:
        self._client, self._delay = client, delay
        self.read = threading.Event()
        self.written: list[float] = []

    def insert_arrow(self, *args: Any, **kwargs: Any) -> Any:
        self.read.set()
        time.sleep(self._delay)
        result = self._client.insert_arrow(*args, **kwargs)
        self.written.append(time.monotonic())
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def start_earlier_try(fake: FakeKubernetes, database: str, **pod_template_metadata: Any) -> tuple[dict, dict]:
    """Create the Job try 1 created before its worker died; return (Job, its pod) as the API has them."""
    ti = StandInTaskInstance(try_number=1)
    manifest = ApiClient().sanitize_for_serialization(
        day_operator(database).build_job_request_obj(task_context(ti))
    )
    manifest["spec"]["template"]["metadata"].update(pod_template_metadata)
    job = fake.create_job(manifest)
    (pod,) = fake.list_pods(f"controller-uid={job['metadata']['uid']}")
    return job, pod


# --- tests -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_earlier_try_pod_is_gone_before_the_day_is_deleted(
    slow_pods, stack, pg, ch, day_database, clickhouse_deletes, deferrable
):
    from label_conversations import JobConfig, connect_postgres, run

    old_client = DelayedWrites(ch, OLD_POD_WRITE_DELAY)

    def pod_runs_the_job(job: dict) -> JobOutcome:
        client = old_client if try_of(job) == 1 else ch
        with connect_postgres(stack[1]) as job_pg:
            result = run(JobConfig.from_env(main_env(job)), job_pg, client)
        return JobOutcome(True, f"try {try_of(job)}: wrote {result.rows} rows\n")

    slow_pods.on_job = pod_runs_the_job
    other_days = clickhouse_other_days(ch, day_database)
    old_job, old_pod = start_earlier_try(slow_pods, day_database)
    assert old_client.read.wait(20), "the earlier try's pod never read Postgres"
    # the fix the backfill exists for lands after the old pod read the day: its rows are stale
    pg.execute(
        "UPDATE conversations SET agent_user_id = %s WHERE conversation_id = ANY(%s)",
        (f"{CUSTOMER}-a1", list(REASSIGNED)),
    )
    pg.commit()

    ti = StandInTaskInstance(try_number=2)
    if not deferrable:
        day_operator(day_database).execute(task_context(ti))
    else:
        with pytest.raises(TaskDeferred) as deferred:
            day_operator(day_database, deferrable=True).execute(task_context(ti))
        event = asyncio.run(first_event(deferred.value.trigger))
        assert event["status"] == "success", event
        before_resume = (clickhouse_day(ch, day_database, DAY), list(clickhouse_deletes))
        resumed = day_operator(day_database, deferrable=True)  # a resumed task is a fresh instance
        getattr(resumed, deferred.value.method_name)(task_context(ti), event)
        assert (clickhouse_day(ch, day_database, DAY), clickhouse_deletes) == before_resume

    old_written = old_client.written
    old_gone = slow_pods.event_times("pod-gone", old_pod["metadata"]["name"])
    (delete_started, delete_done) = [t for _, t in clickhouse_deletes]
    new_created = slow_pods.event_times("job-created", JOB_NAME)[1:]
    assert old_written and old_gone and new_created, (old_written, old_gone, new_created)
    assert old_written[0] < old_gone[0], "the old pod wrote, then exited and was removed"
    assert old_gone[0] < delete_started, "ClickHouse delete started while the earlier try's pod still existed"
    assert delete_done < new_created[0], "the new Job was created before the day's delete finished"
    assert slow_pods.deleted_jobs == [("default", JOB_NAME, "Foreground")]
    assert slow_pods.get_job(JOB_NAME)["metadata"]["uid"] != old_job["metadata"]["uid"]
    # the operator derived the Job's env and labels from the customer, the day and the run
    new_job = slow_pods.get_job(JOB_NAME)
    assert {k: main_env(new_job)[k] for k in (ENV_START, ENV_END, ENV_CUSTOMER)} == {
        ENV_START: "2026-03-10T00:00:00Z",
        ENV_END: "2026-03-11T00:00:00Z",
        ENV_CUSTOMER: CUSTOMER,
    }
    labels = new_job["metadata"]["labels"]
    assert (
        labels["label-backfill/run-id"] == label_value(RUN_ID)
        and labels["label-backfill/day"] == "2026-03-10"
    )
    # the day ends exact: every physical row equals the eligible Postgres rows, the reassignment included
    expected = postgres_day(pg, DAY)
    assert len(expected) == 40 and {r[0]: r[1] for r in expected}["o000"] == f"{CUSTOMER}-a1"
    assert clickhouse_day(ch, day_database, DAY) == expected
    assert clickhouse_other_days(ch, day_database) == other_days


def test_pod_that_never_goes_away_fails_the_day_and_leaves_clickhouse_untouched(
    slow_pods, stack, pg, ch, day_database, clickhouse_deletes
):
    release = threading.Event()

    def old_pod_hangs(job: dict) -> JobOutcome:
        release.wait(60)
        return JobOutcome(True, "never wrote\n")

    slow_pods.on_job = old_pod_hangs
    before = table_snapshot(ch, day_database)
    _, old_pod = start_earlier_try(slow_pods, day_database, finalizers=["example.com/audit-hold"])
    try:
        started = time.monotonic()
        with pytest.raises(AirflowException) as err:
            day_operator(day_database, replace_timeout=2).execute(task_context(StandInTaskInstance(2)))
        assert time.monotonic() - started < 20
        message = str(err.value)
        assert JOB_NAME in message and old_pod["metadata"]["name"] in message, message
        assert clickhouse_deletes == []
        assert table_snapshot(ch, day_database) == before
        assert [j["metadata"]["name"] for j in slow_pods.created_jobs] == [JOB_NAME]  # no second Job
    finally:
        release.set()
