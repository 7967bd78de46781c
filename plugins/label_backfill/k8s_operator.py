"""Run a Kubernetes Job made from the live CronJob's jobTemplate, as an Airflow operator.

A hook, :class:`CronJobJobHook`, that stops a Job for good (the Job and every pod of it gone), and an
operator, :class:`CronJobJobOperator`, that stops the Job an earlier try left, reads the CronJob at run time,
builds the Job with :func:`label_backfill.k8s_job.job_from_cronjob` and lets :class:`KubernetesJobOperator`
create, watch (blocking or deferred), stream logs from and kill it.

Written against apache-airflow-providers-cncf-kubernetes 10.25.0. Every place that copies a provider
internal or patches a provider gap says so with a ``# cncf-kubernetes 10.25.0:`` comment (what, and why):
re-check those when the provider is upgraded.
"""

from __future__ import annotations

import datetime as dt
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

from label_backfill.k8s_job import JOB_NAME_LABELS, job_from_cronjob

if TYPE_CHECKING:
    from airflow.sdk import Context


class JobNotStopped(AirflowException):
    """A Job or one of its pods was still there when :meth:`CronJobJobHook.stop_job` gave up."""


def _since(moment: dt.datetime | None) -> str:
    return f"deleting since {moment.isoformat()}" if moment else "not being deleted"


# cncf-kubernetes 10.25.0: KubernetesHook can delete a Job (KubernetesDeleteJobOperator) but never waits for
# its pods, which outlive it; this subclass adds the stop that waits for both. Its API calls use the
# provider's generic_api_retry (an internal helper) to retry transient API errors as the hook's own do.
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
        """Delete the Job ``name`` and wait until it is gone and none of its pods runs any more.

        The Job is deleted with ``Foreground`` propagation: the garbage collector deletes its pods, each
        terminating within its own grace period, and the Job stays visible until they are gone. Pods are
        never deleted directly (the runner's Role may not, see ``include/k8s/rbac.yaml``): a pod orphaned
        from its Job (``kubectl delete job --cascade=orphan``) is waited for until it has finished, and a
        finished pod (``Succeeded``/``Failed``) runs nothing, whether or not it is still listed. Returns
        at once if there is nothing.

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
            pods = [pod for pod in self.list_job_pods(name, namespace) if not _finished(pod)]
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
        orphans = [pod.metadata.name for pod in pods if pod.metadata.deletion_timestamp is None]
        delete = (
            f" A running pod no Job owns is not deleted by the runner (its Role may not delete pods): "
            f"`kubectl -n {namespace} delete pod {' '.join(orphans)}` once its work may be cut off."
            if orphans
            else ""
        )
        return (
            f"Job {namespace}/{name} of an earlier try is not gone {timeout:.0f}s after it was deleted; "
            f"still there: {'; '.join(left)}. See `kubectl -n {namespace} {first_pod}`.{delete}"
        )


def _owned_by(pod: k8s.V1Pod, job: k8s.V1Job) -> bool:
    """Whether the Job's controller made the pod (its ownerReference, else its controller-uid label)."""
    uid = job.metadata.uid if job.metadata else None
    if not uid:
        return True  # nothing to tell them apart by (a Job object without uid)
    owners = [ref.uid for ref in (pod.metadata.owner_references or [])]
    labels = pod.metadata.labels or {}
    return uid in owners or uid in (
        labels.get("controller-uid"),
        labels.get("batch.kubernetes.io/controller-uid"),
    )


def _finished(pod: k8s.V1Pod) -> bool:
    """A pod whose containers have all ended for good runs nothing any more."""
    return bool(pod.status and pod.status.phase in ("Succeeded", "Failed"))


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
    :param job_name: name of the Job, a DNS-1123 label, see :func:`~label_backfill.k8s_job.job_name_for_day`.
        (templated)
    :param job_env: environment variables to set on ``container_name``. (templated)
    :param job_labels: labels for the Job and its pods, see :func:`~label_backfill.k8s_job.label_value`.
        (templated)
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
        # cncf-kubernetes 10.25.0: logs, the trigger and cleanup follow base_container_name (default "base",
        # a name the CronJob's pod need not have); set here, not only when the Job is built, because
        # execute_complete runs on a fresh instance after a deferral
        kwargs["base_container_name"] = container_name
        # cncf-kubernetes 10.25.0: the pod operator base class deletes finished pods (on_finish_action
        # "delete_pod") and, on kill, the pods it watched (on_kill_action), and labels pods it has checked
        # (a pod patch): rights the runner's Role does not have (include/k8s/rbac.yaml). A Job's pods go
        # with the Job (Foreground deletion, ttlSecondsAfterFinished), so they are kept; see
        # patch_already_checked and get_pods for the label
        kwargs.setdefault("on_finish_action", "keep_pod")
        kwargs.setdefault("on_kill_action", "keep_pod")
        super().__init__(wait_until_job_complete=wait_until_job_complete, get_logs=get_logs, **kwargs)
        self.cronjob_name = cronjob_name
        self.container_name = container_name
        self.job_name = job_name
        self.job_env = job_env or {}
        self.job_labels = job_labels or {}
        self.replace_timeout = replace_timeout
        self.pod_discovery_timeout = pod_discovery_timeout

    # cncf-kubernetes 10.25.0: overrides the provider's ``hook`` property (same constructor arguments) so
    # the operator's own calls get the Job-stopping methods of the subclass
    @cached_property
    def hook(self) -> CronJobJobHook:
        return CronJobJobHook(
            conn_id=self.kubernetes_conn_id,
            in_cluster=self.in_cluster,
            config_file=self.config_file,
            cluster_context=self.cluster_context,
        )

    def _job_namespace(self) -> str:
        # cncf-kubernetes 10.25.0: the same fallback as KubernetesJobOperator.build_job_request_obj (copied:
        # the provider resolves it inline there, and the earlier try's Job must be looked for in the same
        # namespace before any Job is built)
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
        )
        job.metadata.namespace = namespace
        template = job.spec.template
        # cncf-kubernetes 10.25.0: what KubernetesPodOperator.build_pod_request_obj does to every pod, copied
        # because the pod comes from the CronJob, not from build_pod_request_obj: the task-instance labels
        # of the internal _get_ti_pod_labels (get_pods() and the cleanup find the Job's pods by them), the
        # airflow_version label, the cluster policy pod_mutation_hook, and pod_request_obj/parallelism,
        # which the provider's execute and get_pods read
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
        # cncf-kubernetes 10.25.0: KubernetesJobOperator.get_pods lists pods discover_pods_retry_number
        # times back to back and raises when the job controller has not created the pod yet (it does so
        # a moment after the Job); retried here until pod_discovery_timeout
        deadline = time.monotonic() + self.pod_discovery_timeout
        while True:
            try:
                pods = super().get_pods(pod_request_obj, context, exclude_checked=exclude_checked)
                # cncf-kubernetes 10.25.0: the provider finds pods by the task's labels (no try number) and
                # skips pods it labelled already_checked; the runner labels none (patch_already_checked), so
                # a finished pod an earlier try left would match too: only this Job's pods are ours
                own = [pod for pod in pods if self.job is None or _owned_by(pod, self.job)]
                if not own:
                    raise AirflowException(f"no pod of Job {self.job_name} yet")
                return own
            except AirflowException:
                if time.monotonic() >= deadline:
                    raise
                self.log.info("Waiting for the pod of Job %s", self.job_name)
                time.sleep(self._POLL_SECONDS)

    def patch_already_checked(self, pod: k8s.V1Pod, *, reraise: bool = True) -> None:
        """Label nothing: the runner may not patch pods, and its ``get_pods`` keeps only this Job's pods."""
        # cncf-kubernetes 10.25.0: KubernetesPodOperator.cleanup labels every kept or failed pod
        # already_checked=True so that a retry does not follow it again; here each try first stops the
        # earlier try's Job and follows only the pods its own Job owns
        return None

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
        # cncf-kubernetes 10.25.0: a failed Job fails the task with only "is failed with error <reason>";
        # re-raised with the condition's reason and message, the CronJob and a kubectl hint
        try:
            return super().execute(context)
        except AirflowException as err:
            if self.job is not None and self.job.status is not None and self.hook.is_job_failed(self.job):
                raise AirflowException(self._failure_message(self.job)) from err
            raise

    def execute_complete(self, context: Context, event: dict, **kwargs: Any) -> Any:
        if event.get("status") == "error":
            # cncf-kubernetes 10.25.0: KubernetesJobOperator.execute_complete raises on an error event
            # before it writes the pods' logs (a failed day needs them most), so they are written here
            # first, with the provider's internal _write_logs; and the error message gets the Job's reason
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
