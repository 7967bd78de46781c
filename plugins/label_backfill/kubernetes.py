"""Run one day of label-conversations as a Kubernetes Job made from the live CronJob's jobTemplate.

``kubectl create job --from=cronjob/NAME`` semantics (which the cncf-kubernetes provider lacks) as a
pure function, :func:`job_from_cronjob`; a hook, :class:`CronJobJobHook`, that stops a Job for good
(the Job and every pod of it gone); and an operator, :class:`CronJobJobOperator`, that stops the Job an
earlier try left, reads the CronJob at run time and lets :class:`KubernetesJobOperator` create, watch
(blocking or deferred), stream logs from and kill the Job.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import generic_api_retry
from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.common.compat.sdk import AirflowException
from airflow.settings import pod_mutation_hook
from airflow.version import version as airflow_version
from kubernetes.client import models as k8s
from kubernetes.client.rest import ApiException

if TYPE_CHECKING:
    from airflow.sdk import Context

INSTANTIATE_ANNOTATION = "cronjob.kubernetes.io/instantiate"
# the job controller puts both on every pod (the prefixed one since Kubernetes 1.27); unlike controller-uid,
# they also find pods of an earlier Job of the same name whose uid is no longer known
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
DNS_LABEL_MAX = 63
LABEL_VALUE_MAX = 63
_HASH_LEN = 8

_DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:_HASH_LEN]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def is_dns_label(name: str) -> bool:
    """Whether ``name`` is an RFC 1123 DNS label (what a Job name must be: its pods carry it as a label)."""
    return len(name) <= DNS_LABEL_MAX and bool(_DNS_LABEL_RE.match(name))


def job_name_for_day(customer: str, day: dt.date, prefix: str = "label") -> str:
    """Return the Job name of one customer-day, e.g. ``label-alaska-air-2026-01-05``.

    Deterministic and a valid DNS-1123 label. When the customer id had to be changed to fit (lowercased,
    other characters turned into ``-``, or truncated to stay within 63 characters), a short hash of the
    full ``(customer, day)`` is appended so that distinct customers never share a name.

    :param customer: customer id.
    :param day: UTC day (a ``datetime`` is reduced to its date).
    :param prefix: leading part of the name.
    """
    if isinstance(day, dt.datetime):
        day = day.date()
    day_part = day.isoformat()
    prefix_part = _slug(prefix)
    customer_part = _slug(customer)
    head = f"{prefix_part}-" if prefix_part else ""
    name = f"{head}{customer_part}-{day_part}" if customer_part else f"{head}{day_part}"
    if customer_part == customer and len(name) <= DNS_LABEL_MAX:
        return name
    digest = _short_hash(customer, day_part)
    budget = DNS_LABEL_MAX - len(head) - len(day_part) - len(digest) - 2
    if budget < 1:
        raise ValueError(f"job name prefix {prefix!r} is too long to leave room for a customer and a day")
    customer_part = customer_part[:budget].rstrip("-")
    parts = [p for p in (prefix_part, customer_part, day_part, digest) if p]
    return "-".join(parts)


def label_value(s: str) -> str:
    """Return ``s`` as a valid Kubernetes label value (<= 63 chars, ``[A-Za-z0-9_.-]``, alnum at both ends).

    Valid values come back unchanged; others are cleaned up and get a short hash of the original, so
    the mapping is deterministic and distinct inputs stay distinct, e.g.
    ``manual__2026-01-05T00:00:00+00:00`` -> ``manual__2026-01-05T00-00-00-00-00-1b2c3d4e``.

    :param s: any string (a run id, a customer id, a date...).
    """
    s = str(s)
    if len(s) <= LABEL_VALUE_MAX and _LABEL_VALUE_RE.match(s):
        return s
    digest = _short_hash(s)
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-_.")
    cleaned = cleaned[: LABEL_VALUE_MAX - _HASH_LEN - 1].rstrip("-_.")
    return f"{cleaned}-{digest}" if cleaned else digest


def _invalid_labels(labels: Mapping[str, str]) -> list[str]:
    bad = []
    for key, value in labels.items():
        prefix, _, name = key.rpartition("/")
        key_ok = (
            bool(name)
            and len(name) <= 63
            and bool(_LABEL_NAME_RE.match(name))
            and (not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN_RE.match(prefix))))
        )
        value_ok = (
            isinstance(value, str) and len(value) <= LABEL_VALUE_MAX and bool(_LABEL_VALUE_RE.match(value))
        )
        if not (key_ok and value_ok):
            bad.append(f"{key}={value!r}")
    return bad


def _set_env(container: k8s.V1Container, env: Mapping[str, str]) -> None:
    existing = list(container.env or [])
    for name, value in env.items():
        new_var = k8s.V1EnvVar(name=name, value=value)
        positions = [i for i, var in enumerate(existing) if var.name == name]
        if positions:
            # replaces value_from too: the day's value must win over a secret/configmap reference
            for i in positions:
                existing[i] = new_var
        else:
            existing.append(new_var)
    container.env = existing


def job_from_cronjob(
    cronjob: k8s.V1CronJob,
    *,
    name: str,
    container_name: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    ttl_seconds_after_finished: int | None,
    backoff_limit: int | None,
    owner_reference: bool = True,
) -> k8s.V1Job:
    """Build the Job that ``kubectl create job NAME --from=cronjob/CRONJOB`` would create, plus our changes.

    As kubectl does: the Job gets ``name``, the CronJob's namespace, the labels and annotations of
    ``spec.jobTemplate.metadata`` plus annotation ``cronjob.kubernetes.io/instantiate: manual`` (a
    template annotation of the same key wins), a controller owner reference to the CronJob (without
    ``blockOwnerDeletion``) and a deep copy of ``spec.jobTemplate.spec``. Then: ``labels`` are merged
    into the Job's and the pod template's labels, ``env`` is set on the container named
    ``container_name`` (same-name variables are replaced, others kept, new ones appended), and
    ``ttl_seconds_after_finished`` / ``backoff_limit`` override the template when not None.
    ``cronjob`` is not modified.

    :param cronjob: the CronJob as read from the API (``BatchV1Api.read_namespaced_cron_job``).
    :param name: Job name (a DNS-1123 label, see :func:`job_name_for_day`).
    :param container_name: container that receives ``env``; never guessed from position.
    :param env: environment variables to set on that container.
    :param labels: labels for the Job and its pods (values must be valid, see :func:`label_value`).
    :param ttl_seconds_after_finished: ``spec.ttlSecondsAfterFinished`` override, or None to keep.
    :param backoff_limit: ``spec.backoffLimit`` override, or None to keep.
    :param owner_reference: add the owner reference to the CronJob as kubectl does. Such Jobs count
        against the CronJob's ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` and the
        CronJob controller deletes the oldest finished ones beyond them.
    :raises ValueError: if the CronJob has no job template, no container named ``container_name``
        (the message lists the containers), or ``name``/``labels``/``env`` are not valid.
    """
    cj_meta = cronjob.metadata or k8s.V1ObjectMeta()
    cj_ref = f"CronJob {cj_meta.namespace}/{cj_meta.name}"
    if not is_dns_label(name):
        raise ValueError(f"Job name {name!r} is not a DNS-1123 label (lowercase alnum and '-', <= 63 chars)")
    if bad := _invalid_labels(labels):
        raise ValueError(f"invalid Kubernetes labels: {', '.join(bad)}")
    if bad_env := [f"{k}={v!r}" for k, v in env.items() if not isinstance(k, str) or not isinstance(v, str)]:
        raise ValueError(f"env names and values must be strings: {', '.join(bad_env)}")
    job_template = cronjob.spec.job_template if cronjob.spec else None
    pod_template = job_template.spec.template if job_template and job_template.spec else None
    if pod_template is None or pod_template.spec is None:
        raise ValueError(f"{cj_ref} has no spec.jobTemplate.spec.template.spec")

    template_meta = job_template.metadata or k8s.V1ObjectMeta()
    annotations = {INSTANTIATE_ANNOTATION: "manual", **(template_meta.annotations or {})}
    owner_references = None
    if owner_reference:
        if not cj_meta.uid:
            raise ValueError(f"{cj_ref} has no metadata.uid; pass the CronJob as read from the API")
        owner_references = [
            k8s.V1OwnerReference(
                api_version="batch/v1", kind="CronJob", name=cj_meta.name, uid=cj_meta.uid, controller=True
            )
        ]

    spec: k8s.V1JobSpec = copy.deepcopy(job_template.spec)
    containers = spec.template.spec.containers or []
    target = next((c for c in containers if c.name == container_name), None)
    if target is None:
        available = ", ".join(repr(c.name) for c in containers) or "none"
        raise ValueError(
            f"{cj_ref} has no container named {container_name!r}; available containers: {available}"
        )
    _set_env(target, env)

    pod_meta = spec.template.metadata = spec.template.metadata or k8s.V1ObjectMeta()
    pod_meta.labels = {**(pod_meta.labels or {}), **labels}
    if ttl_seconds_after_finished is not None:
        spec.ttl_seconds_after_finished = ttl_seconds_after_finished
    if backoff_limit is not None:
        spec.backoff_limit = backoff_limit

    return k8s.V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=k8s.V1ObjectMeta(
            name=name,
            namespace=cj_meta.namespace,
            labels={**(template_meta.labels or {}), **labels} or None,
            annotations=annotations,
            owner_references=owner_references,
        ),
        spec=spec,
    )


class JobNotStopped(AirflowException):
    """A Job or one of its pods was still there when :meth:`CronJobJobHook.stop_job` gave up."""


def _since(moment: dt.datetime | None) -> str:
    return f"deleting since {moment.isoformat()}" if moment else "not being deleted"


class CronJobJobHook(KubernetesHook):
    """:class:`KubernetesHook` plus what :class:`CronJobJobOperator` needs: stopping a Job for good.

    A deleted Job's pods keep running until they terminate (up to their grace period) and can outlive
    the Job object (``Background``/``Orphan`` propagation, finalizers), so "the Job is gone" is not
    "nothing of it runs any more": :meth:`stop_job` waits for both.
    """

    @generic_api_retry
    def read_job_or_none(self, name: str, namespace: str) -> k8s.V1Job | None:
        """Return the Job, or None if there is none.

        :param name: Job name.
        :param namespace: its namespace.
        """
        try:
            return self.batch_v1_client.read_namespaced_job(name=name, namespace=namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @generic_api_retry
    def list_job_pods(self, name: str, namespace: str) -> list[k8s.V1Pod]:
        """Return every pod of every Job named ``name`` (its ``job-name`` labels), also pods without a Job.

        :param name: Job name.
        :param namespace: its namespace.
        """
        pods: dict[str, k8s.V1Pod] = {}
        for label in JOB_NAME_LABELS:
            found = self.core_v1_client.list_namespaced_pod(
                namespace=namespace, label_selector=f"{label}={name}"
            )
            pods.update((pod.metadata.uid, pod) for pod in found.items)
        return sorted(pods.values(), key=lambda pod: pod.metadata.name)

    def stop_job(self, name: str, namespace: str, *, timeout: float, poll_interval: float = 0.5) -> None:
        """Delete the Job ``name`` and all of its pods, and wait until none of them exists any more.

        The Job is deleted with ``Foreground`` propagation (it stays visible until its pods are gone);
        pods not being deleted yet (orphans, or not reached by the garbage collector) are deleted
        directly. Each pod terminates within its own grace period. Returns at once if there is nothing.

        :param name: Job name.
        :param namespace: its namespace.
        :param timeout: seconds to wait for the Job and its pods to disappear.
        :param poll_interval: seconds between checks.
        :raises JobNotStopped: when the Job or a pod is still there after ``timeout`` seconds; the
            message names each with its phase and finalizers.
        """
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            job = self.read_job_or_none(name, namespace)
            pods = self.list_job_pods(name, namespace)
            if job is None and not pods:
                if announced:
                    self.log.info("Job %s/%s and its pods are gone", namespace, name)
                return
            if not announced:
                self.log.warning(
                    "Job %s/%s of an earlier try is still there (%s) with pod(s) %s; deleting them and "
                    "waiting until they are gone",
                    namespace,
                    name,
                    f"uid {job.metadata.uid}" if job else "Job already deleted",
                    [pod.metadata.name for pod in pods] or "none",
                )
                announced = True
            if job is not None and job.metadata.deletion_timestamp is None:
                self._delete(
                    self.batch_v1_client.delete_namespaced_job,
                    name,
                    namespace,
                    propagation_policy="Foreground",
                )
            for pod in pods:
                if pod.metadata.deletion_timestamp is None:
                    self._delete(self.core_v1_client.delete_namespaced_pod, pod.metadata.name, namespace)
            if time.monotonic() >= deadline:
                raise JobNotStopped(self._not_stopped_message(name, namespace, job, pods, timeout))
            time.sleep(poll_interval)

    @staticmethod
    @generic_api_retry
    def _delete(delete: Callable[..., Any], name: str, namespace: str, **kwargs: Any) -> None:
        try:
            delete(name=name, namespace=namespace, **kwargs)
        except ApiException as err:
            if err.status != 404:
                raise

    @staticmethod
    def _not_stopped_message(
        name: str, namespace: str, job: k8s.V1Job | None, pods: Sequence[k8s.V1Pod], timeout: float
    ) -> str:
        left = []
        if job is not None:
            left.append(
                f"Job {namespace}/{name} ({_since(job.metadata.deletion_timestamp)}, "
                f"finalizers {job.metadata.finalizers or []})"
            )
        for pod in pods:
            left.append(
                f"pod {namespace}/{pod.metadata.name} (phase {pod.status.phase if pod.status else None}, "
                f"{_since(pod.metadata.deletion_timestamp)}, finalizers {pod.metadata.finalizers or []})"
            )
        first_pod = f"describe pod {pods[0].metadata.name}" if pods else f"describe job {name}"
        return (
            f"Job {namespace}/{name} of an earlier try is not gone {timeout:.0f}s after it was deleted; "
            f"still there: {'; '.join(left)}. See `kubectl -n {namespace} {first_pod}`."
        )


class CronJobJobOperator(KubernetesJobOperator):
    """Run a Kubernetes Job created from a CronJob's jobTemplate (``kubectl create job --from=cronjob``).

    The CronJob is read when the task runs, so the Job uses whatever image, command, secrets and
    resources are deployed at that moment. Per-run settings (``job_name``, ``job_env``,
    ``job_labels``) are templated constructor arguments, so the operator can be mapped with
    ``.partial(...).expand_kwargs(...)``.

    :meth:`execute` runs :meth:`stop_earlier_job` (a Job of the same name left by an earlier try, for
    instance by a worker that died without ``on_kill``, is deleted and the task waits until the Job
    and every pod of it are gone, see :meth:`CronJobJobHook.stop_job`), then :meth:`run_job` (create
    the Job and follow it). Subclasses that must act in between, once nothing of the earlier try can
    run any more, call the two themselves. Waiting (blocking or ``deferrable``), log streaming,
    ``on_kill`` (deletes the Job) and failure detection come from :class:`KubernetesJobOperator`;
    ``wait_until_job_complete`` and ``get_logs`` default to True. The Job's pod template, not the
    operator's pod arguments, defines the pod, so ``image``, ``cmds``, ``arguments``, ``env_vars``,
    ``full_job_spec``, ``job_template_file`` and the pod template arguments are rejected.

    :param cronjob_name: CronJob to copy, in ``namespace`` (else the connection's, else ``default``).
        (templated)
    :param container_name: container that gets ``job_env`` and whose logs are streamed. (templated)
    :param job_name: name of the Job, a DNS-1123 label, see :func:`job_name_for_day`. (templated)
    :param job_env: environment variables to set on ``container_name``. (templated)
    :param job_labels: labels for the Job and its pods, see :func:`label_value`. (templated)
    :param cronjob_owner_reference: give the Job a controller reference to the CronJob as kubectl
        does (see :func:`job_from_cronjob` for the history-limit consequence).
    :param replace_timeout: seconds to wait for a same-name Job of an earlier try and all its pods
        to disappear; then the task fails without creating a Job.
    :param pod_discovery_timeout: seconds to wait for the job controller to create the Job's pod.
    """

    template_fields: Sequence[str] = tuple(
        dict.fromkeys(
            [
                *KubernetesJobOperator.template_fields,
                "cronjob_name",
                "container_name",
                "job_env",
                "job_labels",
                "job_name",
            ]
        )
    )
    template_fields_renderers = {
        **KubernetesJobOperator.template_fields_renderers,
        "job_env": "py",
        "job_labels": "py",
    }

    _REJECTED_KWARGS = (
        "image",
        "cmds",
        "arguments",
        "env_vars",
        "full_job_spec",
        "job_template_file",
        "full_pod_spec",
        "pod_template_file",
        "pod_template_dict",
    )
    _POLL_SECONDS = 0.5

    def __init__(
        self,
        *,
        cronjob_name: str,
        container_name: str,
        job_name: str,
        job_env: dict[str, str] | None = None,
        job_labels: dict[str, str] | None = None,
        wait_until_job_complete: bool = True,
        get_logs: bool = True,
        cronjob_owner_reference: bool = True,
        replace_timeout: float = 300.0,
        pod_discovery_timeout: float = 120.0,
        **kwargs: Any,
    ) -> None:
        if rejected := [k for k in self._REJECTED_KWARGS if kwargs.get(k)]:
            raise ValueError(
                f"{type(self).__name__} takes the pod from CronJob {cronjob_name!r}; "
                f"unsupported argument(s): {', '.join(rejected)} (use job_env for environment variables)"
            )
        if kwargs.get("base_container_name") not in (None, container_name):
            raise ValueError("base_container_name must be container_name (or left out)")
        # set here too, not only at run time: execute_complete runs on a fresh instance after deferral
        kwargs["base_container_name"] = container_name
        super().__init__(wait_until_job_complete=wait_until_job_complete, get_logs=get_logs, **kwargs)
        self.cronjob_name = cronjob_name
        self.container_name = container_name
        self.job_name = job_name
        self.job_env = job_env or {}
        self.job_labels = job_labels or {}
        self.cronjob_owner_reference = cronjob_owner_reference
        self.replace_timeout = replace_timeout
        self.pod_discovery_timeout = pod_discovery_timeout

    @cached_property
    def hook(self) -> CronJobJobHook:
        return CronJobJobHook(
            conn_id=self.kubernetes_conn_id,
            in_cluster=self.in_cluster,
            config_file=self.config_file,
            cluster_context=self.cluster_context,
        )

    def _job_namespace(self) -> str:
        return self.namespace or self.hook.get_namespace() or self._incluster_namespace or "default"

    def stop_earlier_job(self) -> None:
        """Delete the Job named ``job_name`` left by an earlier try; return once it and its pods are gone."""
        self.hook.stop_job(
            self.job_name,
            self._job_namespace(),
            timeout=self.replace_timeout,
            poll_interval=self._POLL_SECONDS,
        )

    def build_job_request_obj(self, context: Context | None = None) -> k8s.V1Job:
        """Build the Job from the live CronJob instead of from the operator's pod arguments."""
        namespace = self._job_namespace()
        self.log.info("Reading CronJob %s/%s", namespace, self.cronjob_name)
        cronjob = self.job_client.read_namespaced_cron_job(name=self.cronjob_name, namespace=namespace)
        job = job_from_cronjob(
            cronjob,
            name=self.job_name,
            container_name=self.container_name,
            env=self.job_env,
            labels={**self.labels, **self.job_labels},
            ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            backoff_limit=self.backoff_limit,
            owner_reference=self.cronjob_owner_reference,
        )
        job.metadata.namespace = namespace
        template = job.spec.template
        # get_pods() finds the Job's pods by the task-instance labels, as for any KubernetesJobOperator
        template.metadata.labels.update(
            {
                **self._get_ti_pod_labels(context),
                "airflow_version": airflow_version.replace("+", "-"),
            }
        )
        if self.annotations:
            template.metadata.annotations = {**(template.metadata.annotations or {}), **self.annotations}
        pod = k8s.V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=k8s.V1ObjectMeta(
                name=job.metadata.name,
                namespace=namespace,
                labels=template.metadata.labels,
                annotations=template.metadata.annotations,
            ),
            spec=template.spec,
        )
        pod_mutation_hook(pod)
        template.metadata.labels, template.metadata.annotations = (
            pod.metadata.labels,
            pod.metadata.annotations,
        )
        template.spec = pod.spec
        self.pod_request_obj = pod
        # logs, the trigger and the xcom/cleanup paths all follow the base container
        self.base_container_name = self.container_name
        self.parallelism = job.spec.parallelism if job.spec.parallelism is not None else 1
        self.log.info(
            "Job %s/%s from CronJob %s: image %s, env %s",
            namespace,
            job.metadata.name,
            self.cronjob_name,
            next(c.image for c in template.spec.containers if c.name == self.container_name),
            sorted(self.job_env),
        )
        return job

    def get_pods(self, pod_request_obj: k8s.V1Pod, context: Context, *, exclude_checked: bool = True):
        """Wait (bounded) for the job controller to create the pod; the provider only retries at once."""
        deadline = time.monotonic() + self.pod_discovery_timeout
        while True:
            try:
                return super().get_pods(pod_request_obj, context, exclude_checked=exclude_checked)
            except AirflowException:
                if time.monotonic() >= deadline:
                    raise
                self.log.info("Waiting for the pod of Job %s", self.job_name)
                time.sleep(self._POLL_SECONDS)

    def _failure_message(self, job: Mapping[str, Any] | k8s.V1Job) -> str:
        job_dict = job.to_dict() if isinstance(job, k8s.V1Job) else job
        meta = job_dict.get("metadata") or {}
        conditions = (job_dict.get("status") or {}).get("conditions") or []
        failed = next((c for c in conditions if c.get("type") == "Failed" and c.get("status") == "True"), {})
        logs = f"The log of container {self.container_name} is above; " if self.get_logs else ""
        return (
            f"Kubernetes Job {meta.get('namespace')}/{meta.get('name')} (from CronJob {self.cronjob_name}) "
            f"failed: {failed.get('reason') or 'unknown reason'}: {failed.get('message') or 'no message'}. "
            f"{logs}see `kubectl -n {meta.get('namespace')} describe job {meta.get('name')}`."
        )

    def execute(self, context: Context) -> Any:
        self.stop_earlier_job()
        return self.run_job(context)

    def run_job(self, context: Context) -> Any:
        """Create the Job and follow it as :meth:`KubernetesJobOperator.execute` does (blocking or deferred).

        Creation fails (409) if a Job of the same name exists: call :meth:`stop_earlier_job` first.
        """
        try:
            return super().execute(context)
        except AirflowException as err:
            if self.job is not None and self.job.status is not None and self.hook.is_job_failed(self.job):
                raise AirflowException(self._failure_message(self.job)) from err
            raise

    def execute_complete(self, context: Context, event: dict, **kwargs: Any) -> Any:
        if event.get("status") == "error":
            # the provider raises before it fetches logs; a failed day needs them most
            if self.get_logs:
                self._write_event_pod_logs(event)
            if isinstance(event.get("job"), dict):
                event = {**event, "message": self._failure_message(event["job"])}
        return super().execute_complete(context, event, **kwargs)

    def _write_event_pod_logs(self, event: Mapping[str, Any]) -> None:
        namespace = event.get("pod_namespace") or event.get("namespace")
        for pod_name in event.get("pod_names") or []:
            try:
                self._write_logs(self.hook.get_pod(pod_name, namespace))
            except ApiException as err:
                self.log.warning("Could not read the log of pod %s/%s: %s", namespace, pod_name, err.reason)
