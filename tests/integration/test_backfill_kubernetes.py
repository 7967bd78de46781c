"""The backfill DAG with the kubernetes runner against the fake Kubernetes API: each day becomes a Job made
from the CronJob's jobTemplate, and the fake's job controller runs the reference job with the env it finds
on the named container, so the repair is real."""

from __future__ import annotations

import pytest

from tests.fakes.kube_api import CONTAINER_NAME, IMAGE, JobOutcome
from tests.helpers import run_dag

pytestmark = pytest.mark.integration

DAG_ID = "conversation_labels_backfill"
ENV_START = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START"
ENV_END = "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END"
ENV_CUSTOMER = "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE"


def container(job: dict, name: str) -> dict:
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == name)


@pytest.fixture
def kube_runner(fake_kube, monkeypatch, stack, ch):
    from label_conversations import JobConfig, connect_postgres, run

    monkeypatch.setenv("LABEL_BACKFILL_JOB_RUNNER", "kubernetes")
    monkeypatch.setenv("LABEL_BACKFILL_K8S_POLL_SECONDS", "0.2")

    def run_the_container(job: dict) -> JobOutcome:
        env = {e["name"]: e.get("value", "") for e in container(job, CONTAINER_NAME).get("env", [])}
        if env.get(ENV_START, "").startswith("2026-02-04"):
            return JobOutcome(False, "label-conversations: connection refused\n")
        with connect_postgres(stack[1]) as pg:
            result = run(JobConfig.from_env(env), pg, ch)
        return JobOutcome(True, f"label-conversations: wrote {result.rows} rows\n")

    fake_kube.on_job = run_the_container
    return fake_kube


def test_days_run_as_jobs_from_the_cronjob_template(kube_runner, pg, ch, airflow_db, capfd):
    from label_backfill.dev.simulate import simulate

    from tests.integration.test_backfill_dag import compare_range

    simulate(pg, ch, scale_name="small", seed=7)
    run, states = run_dag(
        DAG_ID, {"customer": "alaska-air", "start_date": "2026-02-02", "end_date": "2026-02-04"}
    )

    assert states["label_day"] == ["success", "success", "failed"]  # a failed Job fails its day
    shown = sorted(ti.rendered_map_index for ti in run.get_task_instances() if ti.task_id == "label_day")
    assert shown == ["2026-02-02", "2026-02-03", "2026-02-04"]  # the grid names each day by its date
    assert str(run.state) == "failed" and states["verify"] == ["failed"]
    jobs = {j["metadata"]["name"]: j for j in kube_runner.created_jobs}
    assert sorted(jobs) == [f"label-alaska-air-2026-02-0{d}" for d in (2, 3, 4)]
    job = jobs["label-alaska-air-2026-02-03"]
    main = container(job, CONTAINER_NAME)
    assert main["image"] == IMAGE and main["command"] == ["python", "-m", "label_conversations"]
    assert main["envFrom"] == [{"secretRef": {"name": "label-conversations-db"}}]
    env = {e["name"]: e["value"] for e in main["env"]}
    assert env[ENV_START] == "2026-02-03T00:00:00Z" and env[ENV_END] == "2026-02-04T00:00:00Z"
    assert env[ENV_CUSTOMER] == "alaska-air" and env["LOG_LEVEL"] == "info"
    sidecar = job["spec"]["template"]["spec"]["containers"][0]
    assert sidecar["name"] != CONTAINER_NAME and ENV_START not in str(sidecar)
    labels = job["metadata"]["labels"]
    assert labels["label-backfill/customer"] == "alaska-air" and labels["label-backfill/day"] == "2026-02-03"
    assert labels["label-backfill/dag-id"] == DAG_ID and labels["label-backfill/run-id"]
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert "wrote" in "".join(capfd.readouterr())  # the pod log reaches the task log
    assert compare_range(pg, ch, "2026-02-02", "2026-02-03").ok
    assert not compare_range(pg, ch, "2026-02-04", "2026-02-04").ok


def test_deferrable_waits_complete_the_run(kube_runner, pg, ch, airflow_db, monkeypatch, capfd):
    from label_backfill.dev.simulate import simulate

    from tests.integration.test_backfill_dag import compare_range

    monkeypatch.setenv("LABEL_BACKFILL_DEFERRABLE", "true")
    simulate(pg, ch, scale_name="small", seed=7)
    run, states = run_dag(
        DAG_ID, {"customer": "alaska-air", "start_date": "2026-02-02", "end_date": "2026-02-03"}
    )
    assert str(run.state) == "success", states
    assert states["label_day"] == ["success", "success"] and states["wait_for_mutations"] == ["success"]
    assert compare_range(pg, ch, "2026-02-02", "2026-02-03").ok
    assert "".join(capfd.readouterr()).count("Pausing task as DEFERRED") >= 2  # each day waited in a trigger
