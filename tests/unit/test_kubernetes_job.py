"""Job names, label values, ``kubectl create job --from=cronjob`` semantics and the operator's surface."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import types

import kubernetes_validate
import pytest
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from label_backfill.k8s_job import (
    INSTANTIATE_ANNOTATION,
    day_labels,
    job_from_cronjob,
    job_name_for_day,
    label_value,
)
from label_backfill.k8s_operator import CronJobJobOperator

from tests.fakes.kube_api import (
    CONTAINER_NAME,
    CRONJOB_NAME,
    IMAGE,
    SIDECAR_NAME,
    label_conversations_cronjob,
)

pytestmark = pytest.mark.unit

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
DAY = dt.date(2026, 1, 5)
ENV = {
    "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START": "2026-01-05T00:00:00Z",
    "LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END": "2026-01-06T00:00:00Z",
    "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE": "alaska-air",
}
LABELS = {
    "app.kubernetes.io/managed-by": "airflow",
    "label-backfill/dag-id": "label_backfill",
    "label-backfill/run-id": label_value("manual__2026-01-05T00:00:00+00:00"),
    "label-backfill/customer": "alaska-air",
    "label-backfill/day": "2026-01-05",
}
CRONJOB_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def cronjob_model(manifest: dict | None = None) -> k8s.V1CronJob:
    """The CronJob as the client returns it from ``read_namespaced_cron_job``."""
    manifest = manifest or label_conversations_cronjob()
    manifest["metadata"].setdefault("uid", CRONJOB_UID)
    response = types.SimpleNamespace(data=json.dumps(manifest))
    return ApiClient().deserialize(response, "V1CronJob")


def build(cronjob: k8s.V1CronJob | None = None, **overrides) -> k8s.V1Job:
    kwargs = dict(
        name=job_name_for_day("alaska-air", DAY),
        container_name=CONTAINER_NAME,
        env=ENV,
        labels=LABELS,
        ttl_seconds_after_finished=None,
        backoff_limit=None,
    )
    kwargs.update(overrides)
    return job_from_cronjob(cronjob or cronjob_model(), **kwargs)


def containers(job: k8s.V1Job) -> dict[str, k8s.V1Container]:
    return {c.name: c for c in job.spec.template.spec.containers}


def env_of(container: k8s.V1Container) -> list[tuple[str, str | None]]:
    return [(e.name, e.value) for e in container.env or []]


# --- job_name_for_day ----------------------------------------------------------------------------


def test_job_name_is_readable_and_deterministic():
    assert job_name_for_day("alaska-air", DAY) == "label-alaska-air-2026-01-05"
    assert job_name_for_day("alaska-air", DAY) == job_name_for_day("alaska-air", dt.date(2026, 1, 5))
    assert job_name_for_day("alaska-air", DAY, prefix="relabel") == "relabel-alaska-air-2026-01-05"
    assert job_name_for_day("alaska-air", dt.datetime(2026, 1, 5, 13, 0, tzinfo=dt.UTC)) == (
        "label-alaska-air-2026-01-05"
    )


@pytest.mark.parametrize(
    "customer",
    ["alaska-air", "Alaska Air", "ACME_corp", "émile.co", "---", "9lives", "a" * 100, "x-" * 40, ""],
)
def test_job_name_is_a_dns_label(customer):
    name = job_name_for_day(customer, DAY)
    assert len(name) <= 63
    assert DNS_LABEL.match(name), name
    assert "2026-01-05" in name
    assert name.startswith("label-")


def test_long_customer_names_stay_unique_and_readable():
    a = job_name_for_day("a-very-long-customer-identifier-that-goes-on-and-on-alpha", DAY)
    b = job_name_for_day("a-very-long-customer-identifier-that-goes-on-and-on-beta", DAY)
    assert a != b
    assert len(a) <= 63 and len(b) <= 63
    assert a.startswith("label-a-very-long-customer") and "2026-01-05" in a
    assert re.search(r"-[0-9a-f]{8}$", a)


def test_customers_that_slug_alike_get_distinct_names():
    names = {job_name_for_day(c, DAY) for c in ("acme-corp", "acme_corp", "ACME-corp", "acme corp")}
    assert len(names) == 4
    assert "label-acme-corp-2026-01-05" in names  # a valid customer id is kept as is


def test_names_differ_by_day_and_customer():
    names = {job_name_for_day(c, DAY + dt.timedelta(days=d)) for c in ("a", "b") for d in range(40)}
    assert len(names) == 80


def test_absurd_prefix_is_rejected():
    with pytest.raises(ValueError, match="prefix"):
        job_name_for_day("alaska-air", DAY, prefix="p" * 60)


# --- label_value ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["airflow", "alaska-air", "2026-01-05", "label_backfill", "a.b-c_D9", ""])
def test_valid_label_values_are_unchanged(value):
    assert label_value(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "manual__2026-01-05T00:00:00+00:00",
        "scheduled__2026-01-05T00:00:00.123456+00:00",
        "backfill run: ünïcode / slashes",
        "_leading-and-trailing_",
        "r" * 200,
        "+++",
    ],
)
def test_label_values_are_sanitised(value):
    out = label_value(value)
    assert len(out) <= 63
    assert LABEL_VALUE.match(out), out
    assert out == label_value(value)


def test_label_value_keeps_distinct_inputs_distinct():
    assert label_value("manual__2026-01-05T00:00:00+00:00") != label_value(
        "manual__2026-01-05T00:00:00-00:00"
    )
    assert label_value("x" * 100 + "a") != label_value("x" * 100 + "b")
    assert label_value("manual__2026-01-05T00:00:00+00:00").startswith("manual__2026-01-05T00-00-00")


def test_day_labels_name_the_dag_run_customer_and_day_with_valid_values():
    assert day_labels("label_backfill", "manual__2026-01-05T00:00:00+00:00", "alaska-air", DAY) == LABELS
    odd = day_labels(
        "conversation_labels_backfill", "scheduled__2026-01-05T00:00:00.1+00:00", "Émile & Co", DAY
    )
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in odd.values()), odd


# --- job_from_cronjob ----------------------------------------------------------------------------


def test_job_keeps_the_cronjob_pod_template():
    cronjob = cronjob_model()
    job = build(cronjob)
    main = containers(job)[CONTAINER_NAME]
    assert main.image == IMAGE
    assert main.command == ["python", "-m", "label_conversations"]
    assert [e.secret_ref.name for e in main.env_from] == ["label-conversations-db"]
    assert main.resources.requests == {"cpu": "500m", "memory": "1Gi"}
    assert main.resources.limits == {"cpu": "2", "memory": "2Gi"}
    pod_spec = job.spec.template.spec
    assert pod_spec.service_account_name == "label-conversations"
    assert pod_spec.restart_policy == "Never"
    assert job.spec.backoff_limit == 0
    assert job.spec.active_deadline_seconds == 3600
    # order kept, sidecar byte-for-byte the CronJob's
    assert [c.name for c in pod_spec.containers] == [SIDECAR_NAME, CONTAINER_NAME]
    assert (
        containers(job)[SIDECAR_NAME].to_dict()
        == cronjob.spec.job_template.spec.template.spec.containers[0].to_dict()
    )


def test_env_goes_on_the_named_container_not_the_first():
    job = build()
    main, sidecar = containers(job)[CONTAINER_NAME], containers(job)[SIDECAR_NAME]
    assert env_of(main) == [
        ("LOG_LEVEL", "info"),  # kept
        ("FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE", "alaska-air"),  # overridden in place
        ("LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_START", "2026-01-05T00:00:00Z"),
        ("LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE_CONV_START_AT_RANGE_END", "2026-01-06T00:00:00Z"),
    ]
    assert env_of(sidecar) == [("LOG_LEVEL", "warning")]


def test_env_override_replaces_value_from():
    manifest = label_conversations_cronjob()
    main = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][1]
    main["env"].append(
        {"name": "LOG_LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}}
    )
    job = build(cronjob_model(manifest), env={"LOG_LEVEL": "debug"})
    levels = [e for e in containers(job)[CONTAINER_NAME].env if e.name == "LOG_LEVEL"]
    assert [(e.value, e.value_from) for e in levels] == [("debug", None), ("debug", None)]


def test_kubectl_metadata_and_annotation_but_no_owner_reference():
    job = build()
    assert (job.api_version, job.kind) == ("batch/v1", "Job")
    assert job.metadata.name == "label-alaska-air-2026-01-05"
    assert job.metadata.namespace == "default"
    assert job.metadata.annotations == {INSTANTIATE_ANNOTATION: "manual", "owner": "ml-platform@example.com"}
    # unlike kubectl: the CronJob's history limits must never delete a day's Job before Airflow read it
    assert job.metadata.owner_references is None


def test_template_annotation_wins_over_instantiate_like_kubectl():
    manifest = label_conversations_cronjob()
    manifest["spec"]["jobTemplate"]["metadata"]["annotations"][INSTANTIATE_ANNOTATION] = "from-template"
    assert build(cronjob_model(manifest)).metadata.annotations[INSTANTIATE_ANNOTATION] == "from-template"


def test_labels_on_job_and_pod_template():
    job = build()
    assert job.metadata.labels == {
        "app.kubernetes.io/name": "label-conversations",
        "team": "ml-platform",
        **LABELS,
    }
    assert job.spec.template.metadata.labels == {"app.kubernetes.io/name": "label-conversations", **LABELS}
    assert job.spec.template.metadata.annotations == {
        "cluster-autoscaler.kubernetes.io/safe-to-evict": "false"
    }


def test_ttl_and_backoff_applied_only_when_given():
    assert build().spec.ttl_seconds_after_finished is None
    job = build(ttl_seconds_after_finished=86400, backoff_limit=2)
    assert (job.spec.ttl_seconds_after_finished, job.spec.backoff_limit) == (86400, 2)
    assert build(backoff_limit=None).spec.backoff_limit == 0


def test_input_cronjob_is_not_mutated():
    cronjob = cronjob_model()
    before = copy.deepcopy(cronjob.to_dict())
    job = build(cronjob, ttl_seconds_after_finished=60, backoff_limit=3)
    assert cronjob.to_dict() == before
    # and the Job shares no mutable objects with it
    job.spec.template.spec.containers[0].args.append("--mutated")
    job.spec.template.metadata.labels["mutated"] = "yes"
    assert cronjob.to_dict() == before


def test_missing_container_names_the_available_ones():
    with pytest.raises(ValueError, match="no container named 'label-conversation'") as err:
        build(container_name="label-conversation")
    assert "'cloud-sql-proxy', 'label-conversations'" in str(err.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"name": "Label_Alaska"}, "DNS-1123"),
        ({"name": "x" * 64}, "DNS-1123"),
        (
            {"labels": {"label-backfill/run-id": "manual__2026-01-05T00:00:00+00:00"}},
            "invalid Kubernetes labels",
        ),
        ({"labels": {"bad key!": "x"}}, "invalid Kubernetes labels"),
        ({"env": {"N": 5}}, "must be strings"),
    ],
)
def test_invalid_inputs_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        build(**overrides)


@pytest.mark.parametrize(
    "var, where",
    [
        ({"name": "LABEL_CONVERSATIONS_POSTGRES_DSN", "value": "host=pg user=x"}, CONTAINER_NAME),
        ({"name": "DB_PASSWORD", "value": "hunter2"}, SIDECAR_NAME),
        ({"name": "API_KEY", "value": "abc"}, CONTAINER_NAME),
        ({"name": "UPSTREAM", "value": "http://user:pw@clickhouse:8123"}, CONTAINER_NAME),
    ],
    ids=["dsn", "password-in-sidecar", "key", "url-with-password"],
)
def test_a_cronjob_with_a_literal_secret_is_refused(var, where):
    """The provider pushes the whole Job spec to XCom: secrets must come from a Secret, never literally."""
    manifest = label_conversations_cronjob()
    pod = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    next(c for c in pod["containers"] if c["name"] == where).setdefault("env", []).append(var)
    with pytest.raises(
        ValueError, match=rf"{where}\.{var['name']} as literal env values.*secretKeyRef or envFrom"
    ):
        build(cronjob_model(manifest))


def test_secrets_by_reference_and_harmless_literals_pass():
    manifest = label_conversations_cronjob()
    pod = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    main = next(c for c in pod["containers"] if c["name"] == CONTAINER_NAME)
    main["env"] += [
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "KEYBOARD_LAYOUT", "value": "us"},
        {"name": "CLICKHOUSE_URL", "value": "http://clickhouse:8123"},
    ]
    assert build(cronjob_model(manifest)).spec.template.spec.containers


def test_cronjob_without_uid_is_enough():
    manifest = label_conversations_cronjob()
    response = types.SimpleNamespace(data=json.dumps(manifest))
    cronjob = ApiClient().deserialize(response, "V1CronJob")
    assert cronjob.metadata.uid is None
    assert build(cronjob).metadata.owner_references is None


def test_generated_job_is_valid_against_the_kubernetes_schema():
    manifest = ApiClient().sanitize_for_serialization(build(ttl_seconds_after_finished=3600, backoff_limit=1))
    version = kubernetes_validate.latest_version()
    assert kubernetes_validate.validate(manifest, version, strict=True) is not None
    # the validator does catch mistakes
    broken = copy.deepcopy(manifest)
    broken["spec"]["template"]["spec"]["containers"][1]["env"][0]["val"] = "typo"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


# --- operator surface ----------------------------------------------------------------------------

OPERATOR_KWARGS = dict(
    task_id="label_day",
    cronjob_name=CRONJOB_NAME,
    container_name=CONTAINER_NAME,
    job_name="label-alaska-air-2026-01-05",
    job_env=ENV,
    job_labels=LABELS,
)


def test_operator_defaults_and_template_fields():
    op = CronJobJobOperator(**OPERATOR_KWARGS)
    assert op.wait_until_job_complete is True
    assert op.get_logs is True
    # the runner's Role may not patch or delete pods: they go with their Job
    assert (op.on_finish_action.value, op.on_kill_action.value) == ("keep_pod", "keep_pod")
    assert op.base_container_name == CONTAINER_NAME
    for field in ("cronjob_name", "container_name", "job_env", "job_labels", "job_name"):
        assert field in op.template_fields
    assert {"namespace", "labels", "kubernetes_conn_id"} <= set(op.template_fields)


@pytest.mark.parametrize("kwarg", [{"image": "busybox"}, {"env_vars": {"A": "1"}}, {"cmds": ["sh"]}])
def test_operator_rejects_pod_arguments_it_would_ignore(kwarg):
    with pytest.raises(ValueError, match="unsupported argument"):
        CronJobJobOperator(**OPERATOR_KWARGS, **kwarg)


def test_operator_can_be_mapped_per_day():
    from airflow.sdk import DAG

    with DAG("label_backfill_mapping_check", schedule=None, start_date=dt.datetime(2026, 1, 1)):
        mapped = CronJobJobOperator.partial(
            task_id="label_day", cronjob_name=CRONJOB_NAME, container_name=CONTAINER_NAME, deferrable=True
        ).expand_kwargs(
            [
                {"job_name": job_name_for_day("alaska-air", d), "job_env": ENV, "job_labels": LABELS}
                for d in (DAY, DAY + dt.timedelta(days=1))
            ]
        )
    assert mapped.partial_kwargs["cronjob_name"] == CRONJOB_NAME
    assert mapped.partial_kwargs["deferrable"] is True


def test_provider_copies_and_patches_are_noted_against_the_installed_provider():
    """Every ``# cncf-kubernetes X:`` note in k8s_operator.py names the installed provider version: an
    upgrade fails here until each noted copy or patch has been re-checked and its note updated."""
    import importlib.metadata
    import pathlib

    import label_backfill.k8s_operator

    source = pathlib.Path(label_backfill.k8s_operator.__file__).read_text()
    noted = re.findall(r"# cncf-kubernetes (\S+?):", source)
    assert len(noted) >= 10
    assert set(noted) == {importlib.metadata.version("apache-airflow-providers-cncf-kubernetes")}
