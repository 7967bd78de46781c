"""CronJobJobOperator against the fake Kubernetes API: blocking, deferred, failing and replaced Jobs.

The fake server is the Kubernetes here; only the Airflow task instance is a stand-in (the operator's
``execute`` needs ``ti.xcom_push`` and the ids that go into pod labels).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import time
import types
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest
from airflow.providers.cncf.kubernetes.triggers.job import KubernetesJobTrigger
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred
from airflow.sdk.bases.operator import ExecutorSafeguard
from label_backfill.k8s_job import job_name_for_day, label_value
from label_backfill.k8s_operator import CronJobJobOperator

from tests.fakes.kube_api import (
    CONTAINER_NAME,
    CRONJOB_NAME,
    IMAGE,
    SIDECAR_NAME,
    FakeKubernetes,
    JobOutcome,
    label_conversations_cronjob,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

DAG_ID = "label_backfill"
RUN_ID = "manual__2026-01-10T08:00:00+00:00"
CUSTOMER = "alaska-air"
DAY = dt.date(2026, 1, 5)
JOB_NAME = job_name_for_day(CUSTOMER, DAY)
START_VAR = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
END_VAR = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
CUSTOMER_VAR = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"


class StandInTaskInstance:
    """What KubernetesJobOperator reads from a task instance, and the XComs it pushes."""

    def __init__(self, try_number: int = 1, map_index: int = 0) -> None:
        self.dag_id, self.task_id, self.run_id = DAG_ID, "label_day", RUN_ID
        self.try_number, self.map_index = try_number, map_index
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def task_context(ti: StandInTaskInstance) -> dict[str, Any]:
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "dag": types.SimpleNamespace(dag_id=ti.dag_id),
    }


def day_env(customer: str = CUSTOMER, day: dt.date = DAY) -> dict[str, str]:
    return {
        START_VAR: f"{day.isoformat()}T00:00:00Z",
        END_VAR: f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z",
        CUSTOMER_VAR: customer,
    }


def day_labels(customer: str = CUSTOMER, day: dt.date = DAY) -> dict[str, str]:
    return {
        "app.kubernetes.io/managed-by": "airflow",
        "label-backfill/dag-id": label_value(DAG_ID),
        "label-backfill/run-id": label_value(RUN_ID),
        "label-backfill/customer": label_value(customer),
        "label-backfill/day": day.isoformat(),
    }


def day_operator(**kwargs: Any) -> CronJobJobOperator:
    return CronJobJobOperator(
        task_id="label_day",
        cronjob_name=CRONJOB_NAME,
        container_name=CONTAINER_NAME,
        job_name=JOB_NAME,
        job_env=day_env(),
        job_labels=day_labels(),
        job_poll_interval=0.1,
        pod_discovery_timeout=10,
        **kwargs,
    )


@pytest.fixture(autouse=True)
def _allow_execute_outside_task_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


@pytest.fixture
def task_log(capfd: pytest.CaptureFixture[str]) -> Callable[[], str]:
    """Everything logged so far: Airflow's structlog loggers write to the process's stdout, not caplog."""
    seen: list[str] = []

    def text() -> str:
        out, err = capfd.readouterr()
        seen.append(out + err)
        return "".join(seen)

    return text


def container_env(manifest: dict, name: str) -> dict[str, str]:
    container = next(c for c in manifest["spec"]["template"]["spec"]["containers"] if c["name"] == name)
    return {e["name"]: e.get("value") for e in container.get("env", [])}


async def first_event(trigger: KubernetesJobTrigger) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return await asyncio.wait_for(run(), timeout=20)


def test_job_is_created_from_the_cronjob_with_the_day_env_and_labels(fake_kube: FakeKubernetes, task_log):
    seen_by_job: list[dict] = []
    fake_kube.on_job = lambda job: seen_by_job.append(job) or JobOutcome(True, "ok\n")
    ti = StandInTaskInstance()

    day_operator().execute(task_context(ti))

    assert [j["metadata"]["name"] for j in fake_kube.created_jobs] == [JOB_NAME]
    manifest = fake_kube.jobs[JOB_NAME]
    assert manifest["metadata"]["namespace"] == "default"
    assert manifest["metadata"]["labels"].items() >= day_labels().items()
    assert manifest["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert "ownerReferences" not in manifest["metadata"]  # the CronJob's history limits never delete it
    pod_spec = manifest["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["containers"]] == [SIDECAR_NAME, CONTAINER_NAME]
    main = pod_spec["containers"][1]
    assert main["image"] == IMAGE
    assert main["command"] == ["python", "-m", "label_conversations"]
    assert main["envFrom"] == [{"secretRef": {"name": "label-conversations-db"}}]
    assert container_env(manifest, CONTAINER_NAME) == {"LOG_LEVEL": "info", **day_env()}
    assert container_env(manifest, SIDECAR_NAME) == {"LOG_LEVEL": "warning"}
    assert pod_spec["serviceAccountName"] == "label-conversations"
    assert manifest["spec"]["template"]["metadata"]["labels"].items() >= day_labels().items()
    # the pod ran with what the CronJob's template plus our day says
    assert container_env(seen_by_job[0], CONTAINER_NAME)[START_VAR] == "2026-01-05T00:00:00Z"
    assert fake_kube.get_job(JOB_NAME)["status"]["succeeded"] == 1
    assert ti.xcoms["job_name"] == JOB_NAME
    assert kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    assert not fake_kube.unhandled


def test_pod_log_reaches_the_task_log(fake_kube: FakeKubernetes, task_log):
    fake_kube.on_job = lambda job: JobOutcome(True, "relabelled 1234 conversations for 2026-01-05\n")

    day_operator().execute(task_context(StandInTaskInstance()))

    assert "[label-conversations] relabelled 1234 conversations for 2026-01-05" in task_log()
    assert "fake sidecar log line" not in task_log()  # the sidecar is the first container


def test_failed_job_fails_the_task_with_a_clear_message(fake_kube: FakeKubernetes, task_log):
    fake_kube.on_job = lambda job: JobOutcome(
        False, "Traceback (most recent call last):\nValueError: bad row 42\n"
    )

    with pytest.raises(AirflowException) as err:
        day_operator().execute(task_context(StandInTaskInstance()))

    message = str(err.value)
    assert JOB_NAME in message and "BackoffLimitExceeded" in message and CRONJOB_NAME in message
    assert "ValueError: bad row 42" in task_log()
    assert fake_kube.get_job(JOB_NAME)["status"]["failed"] == 1


def test_job_left_by_an_earlier_try_is_replaced(fake_kube: FakeKubernetes, task_log):
    fake_kube.on_job = lambda job: JobOutcome(False, "first try fails\n")
    with pytest.raises(AirflowException):
        day_operator(on_finish_action="keep_pod").execute(task_context(StandInTaskInstance(try_number=1)))
    first = fake_kube.get_job(JOB_NAME)
    assert fake_kube.list_pods(f"controller-uid={first['metadata']['uid']}")

    fake_kube.on_job = lambda job: JobOutcome(True, "second try works\n")
    day_operator().execute(task_context(StandInTaskInstance(try_number=2)))

    second = fake_kube.get_job(JOB_NAME)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert fake_kube.deleted_jobs == [("default", JOB_NAME, "Foreground")]
    assert len(fake_kube.created_jobs) == 2
    assert not fake_kube.list_pods(f"controller-uid={first['metadata']['uid']}")
    assert second["status"]["succeeded"] == 1
    assert "second try works" in task_log()


def test_pod_created_after_the_job_is_waited_for(monkeypatch: pytest.MonkeyPatch, task_log):
    # a real job controller creates the pod a moment after the Job; the provider alone retries at once
    with FakeKubernetes(log_container=CONTAINER_NAME, pod_creation_delay=1.0) as fake:
        fake.add_cronjob(label_conversations_cronjob())
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", fake.airflow_connection())
        day_operator().execute(task_context(StandInTaskInstance()))
        assert fake.get_job(JOB_NAME)["status"]["succeeded"] == 1


def test_missing_cronjob_fails_before_creating_anything(fake_kube: FakeKubernetes):
    op = day_operator()
    op.cronjob_name = "cron-does-not-exist"
    # the shipped Role allows reading the one CronJob it names: any other is forbidden, before existence
    fake_kube.expected_forbidden.append(("get", "batch", "cronjobs", "cron-does-not-exist"))
    with pytest.raises(Exception, match="Forbidden|403"):
        op.execute(task_context(StandInTaskInstance()))
    assert fake_kube.created_jobs == []
    assert fake_kube.forbidden == [("get", "batch", "cronjobs", "cron-does-not-exist")]


@pytest.mark.parametrize("succeeds", [True, False], ids=["complete", "backoff-limit-exceeded"])
def test_deferred_job_resumes_through_the_provider_trigger(fake_kube: FakeKubernetes, task_log, succeeds):
    fake_kube.on_job = lambda job: JobOutcome(succeeds, f"deferred day {'ok' if succeeds else 'broke'}\n")
    ti = StandInTaskInstance()

    with pytest.raises(TaskDeferred) as deferred:
        day_operator(deferrable=True).execute(task_context(ti))

    trigger = deferred.value.trigger
    assert isinstance(trigger, KubernetesJobTrigger)
    assert (trigger.job_name, trigger.job_namespace, trigger.base_container_name) == (
        JOB_NAME,
        "default",
        CONTAINER_NAME,
    )
    assert "conditions" not in fake_kube.get_job(JOB_NAME)["status"]  # still running when deferred
    assert fake_kube.get_job(JOB_NAME)["status"]["active"] == 1

    event = asyncio.run(first_event(trigger))

    assert event["status"] == ("success" if succeeds else "error")
    assert event["name"] == JOB_NAME
    # a resumed task is a fresh operator instance
    resumed = day_operator(deferrable=True)
    complete = getattr(resumed, deferred.value.method_name)
    if succeeds:
        complete(task_context(ti), event)
        assert "[label-conversations] logs: deferred day ok" in task_log()
    else:
        with pytest.raises(AirflowException, match=f"{JOB_NAME}.*BackoffLimitExceeded"):
            complete(task_context(ti), event)
        assert "[label-conversations] logs: deferred day broke" in task_log()
    assert ti.xcoms["job"]["metadata"]["name"] == JOB_NAME


def test_fake_api_selectors_and_job_progress_through_the_real_client(fake_kube: FakeKubernetes):
    from kubernetes import client, config

    fake_kube.role_rules = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]  # the fake, as admin

    api = config.new_client_from_config(config_file=fake_kube.kubeconfig_path)
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    template = batch.read_namespaced_cron_job(CRONJOB_NAME, "default").spec.job_template.spec
    for name in ("job-a", "job-b"):
        body = client.V1Job(metadata=client.V1ObjectMeta(name=name, labels={"day": name}), spec=template)
        batch.create_namespaced_job("default", api.sanitize_for_serialization(body))

    a = batch.read_namespaced_job_status("job-a", "default")
    assert a.status.active == 1 and not a.status.conditions  # seen running first
    (pod_a,) = core.list_namespaced_pod("default", label_selector="job-name=job-a").items
    assert pod_a.metadata.labels["batch.kubernetes.io/job-name"] == "job-a"
    by_uid = core.list_namespaced_pod("default", label_selector=f"controller-uid={a.metadata.uid}").items
    assert [p.metadata.name for p in by_uid] == [pod_a.metadata.name]
    assert len(core.list_namespaced_pod("default", label_selector="job-name in (job-a,job-b)").items) == 2
    assert len(core.list_namespaced_pod("default", label_selector="job-name!=job-a,!nope").items) == 1
    assert [
        j.metadata.name for j in batch.list_namespaced_job("default", label_selector="day=job-b").items
    ] == ["job-b"]

    done = fake_kube.wait_for_job("job-a")
    assert [c["type"] for c in done["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    log = core.read_namespaced_pod_log(pod_a.metadata.name, "default", container=CONTAINER_NAME, follow=True)
    assert "job-a done" in str(log)
    with pytest.raises(client.ApiException) as no_container:
        core.read_namespaced_pod_log(pod_a.metadata.name, "default")
    assert no_container.value.status == 400  # two containers: the API makes you choose
    with pytest.raises(client.ApiException) as conflict:
        batch.create_namespaced_job("default", fake_kube.jobs["job-a"])
    assert conflict.value.status == 409
    assert not fake_kube.unhandled


@pytest.fixture
def graceful_pods(fake_kube: FakeKubernetes) -> FakeKubernetes:
    """Pods get the API server's default 30 s to terminate: a deleted pod runs until its container exits."""
    fake_kube.add_cronjob(label_conversations_cronjob(termination_grace_period=30))
    return fake_kube


def pod_working_for(seconds: float) -> Callable[[dict], JobOutcome]:
    def work(job: dict) -> JobOutcome:
        time.sleep(seconds)
        return JobOutcome(True, "done\n")

    return work


def wait_until(condition: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
    return result


def create_job_from_cronjob(fake: FakeKubernetes, name: str) -> tuple[dict, dict]:
    """A Job with the CronJob's template, as the API has it, and its pod."""
    manifest = copy.deepcopy(fake.get_cronjob(CRONJOB_NAME)["spec"]["jobTemplate"])
    manifest["metadata"] = {"name": name}
    job = fake.create_job(manifest)
    (pod,) = fake.list_pods(f"controller-uid={job['metadata']['uid']}")
    return job, pod


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
def test_fake_api_deletion_follows_the_propagation_policy(graceful_pods: FakeKubernetes, policy):
    from kubernetes import client, config

    batch = client.BatchV1Api(config.new_client_from_config(config_file=graceful_pods.kubeconfig_path))
    graceful_pods.on_job = pod_working_for(1.0)
    _, pod = create_job_from_cronjob(graceful_pods, "j")
    pod_name = pod["metadata"]["name"]

    batch.delete_namespaced_job("j", "default", propagation_policy=policy)

    (running,) = graceful_pods.list_pods("job-name=j")
    assert running["status"]["phase"] == "Running"
    assert ("deletionTimestamp" in running["metadata"]) == (policy != "Orphan")
    if policy == "Foreground":  # the Job waits for its pods
        assert graceful_pods.get_job("j")["metadata"]["finalizers"] == ["foregroundDeletion"]
    else:  # the Job is gone at once; its pod outlives it (terminating, or orphaned and working on)
        with pytest.raises(client.ApiException) as gone:
            batch.read_namespaced_job("j", "default")
        assert gone.value.status == 404
    if policy == "Orphan":
        assert "ownerReferences" not in running["metadata"]
        wait_until(lambda: graceful_pods.event_times("pod-exited", pod_name))
        (orphan,) = graceful_pods.list_pods("job-name=j")
        assert orphan["status"]["phase"] == "Succeeded"  # finished its work, nobody deletes it
        return
    (gone_at,) = wait_until(lambda: graceful_pods.event_times("pod-gone", pod_name))
    assert graceful_pods.event_times("pod-exited", pod_name)[0] <= gone_at  # exited within its grace period
    (job_gone,) = wait_until(lambda: graceful_pods.event_times("job-gone", "j"))
    assert (gone_at < job_gone) == (policy == "Foreground")


@pytest.mark.parametrize("policy", ["Background", "Orphan"])
def test_pods_that_outlive_their_job_are_stopped_before_the_new_job(graceful_pods: FakeKubernetes, policy):
    """The Job of an earlier try was deleted without waiting (kubectl's default, or --cascade=orphan): the
    Job object is gone (404), its pod still runs. The new Job is created only once that pod has stopped:
    gone (Background: the garbage collector deletes it) or finished (Orphan: nobody deletes it, and the
    runner may not delete pods; a finished pod writes nothing)."""
    from kubernetes import client, config

    batch = client.BatchV1Api(config.new_client_from_config(config_file=graceful_pods.kubeconfig_path))
    graceful_pods.on_job = pod_working_for(1.0)
    _, old_pod = create_job_from_cronjob(graceful_pods, JOB_NAME)
    old_name = old_pod["metadata"]["name"]
    batch.delete_namespaced_job(JOB_NAME, "default", propagation_policy=policy)
    assert graceful_pods.get_job(JOB_NAME) is None and graceful_pods.list_pods(f"job-name={JOB_NAME}")

    graceful_pods.on_job = lambda job: JobOutcome(True, "new try\n")
    day_operator().execute(task_context(StandInTaskInstance(try_number=2)))

    created = graceful_pods.event_times("job-created", JOB_NAME)
    (old_exited,) = graceful_pods.event_times("pod-exited", old_name)
    assert len(created) == 2 and old_exited < created[1]  # it finished, was not cut off, before the new Job
    if policy == "Background":
        (old_gone,) = graceful_pods.event_times("pod-gone", old_name)
        assert old_gone < created[1]
    else:  # still listed, finished; the new try followed its own Job's pod only
        (orphan,) = [
            p for p in graceful_pods.list_pods(f"job-name={JOB_NAME}") if p["metadata"]["name"] == old_name
        ]
        assert orphan["status"]["phase"] == "Succeeded"
    assert graceful_pods.get_job(JOB_NAME)["status"]["succeeded"] == 1
    assert graceful_pods.forbidden == []
