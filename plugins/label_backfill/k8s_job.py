"""A Kubernetes Job from a CronJob's jobTemplate, and the names and labels of day Jobs: pure functions.

``kubectl create job --from=cronjob/NAME`` semantics (which the cncf-kubernetes provider lacks) as
:func:`job_from_cronjob`; :func:`job_name_for_day`, :func:`label_value` and :func:`day_labels` name and
label a day's Job. No I/O and no Airflow import: the operator that runs such Jobs is in
:mod:`label_backfill.k8s_operator`.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
from collections.abc import Mapping

from kubernetes.client import models as k8s

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


# An env variable named like a secret, or a URL with a password in it: never a literal value in the Job spec,
# which the provider pushes whole to XCom (``ti.xcom_push(key="job", ...)``).
_SECRET_NAME_RE = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|DSN|CREDENTIAL|(^|_)KEY($|_)", re.IGNORECASE)
_URL_PASSWORD_RE = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def literal_secrets(cronjob: k8s.V1CronJob) -> list[str]:
    """``container.VARIABLE`` for each env variable of the CronJob's pod (init containers included) that holds a
    literal value but is named like a secret or contains a URL with a password. Load those through
    ``valueFrom.secretKeyRef`` or ``envFrom``: the Job spec, literal values included, ends up in XCom."""
    spec = (
        cronjob.spec.job_template.spec.template.spec if cronjob.spec and cronjob.spec.job_template else None
    )
    if spec is None:
        return []
    found = []
    for container in [*(spec.init_containers or []), *(spec.containers or [])]:
        for var in container.env or []:
            if var.value and (_SECRET_NAME_RE.search(var.name) or _URL_PASSWORD_RE.search(var.value)):
                found.append(f"{container.name}.{var.name}")
    return found


def job_from_cronjob(
    cronjob: k8s.V1CronJob,
    *,
    name: str,
    container_name: str,
    env: Mapping[str, str],
    labels: Mapping[str, str],
    ttl_seconds_after_finished: int | None,
    backoff_limit: int | None,
) -> k8s.V1Job:
    """Build the Job that ``kubectl create job NAME --from=cronjob/CRONJOB`` would create, plus our changes.

    As kubectl does: the Job gets ``name``, the CronJob's namespace, the labels and annotations of
    ``spec.jobTemplate.metadata`` plus annotation ``cronjob.kubernetes.io/instantiate: manual`` (a
    template annotation of the same key wins) and a deep copy of ``spec.jobTemplate.spec``. Unlike
    kubectl, no owner reference to the CronJob: such Jobs count against the CronJob's
    ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` and the CronJob controller deletes finished
    ones beyond them, with their pods and logs, possibly before Airflow read them
    (``ttl_seconds_after_finished`` cleans up instead). Then: ``labels`` are merged into the Job's and the
    pod template's labels, ``env`` is set on the container named ``container_name`` (same-name variables
    are replaced, others kept, new ones appended), and ``ttl_seconds_after_finished`` / ``backoff_limit``
    override the template when not None. ``cronjob`` is not modified.

    :param cronjob: the CronJob as read from the API (``BatchV1Api.read_namespaced_cron_job``).
    :param name: Job name (a DNS-1123 label, see :func:`job_name_for_day`).
    :param container_name: container that receives ``env``; never guessed from position.
    :param env: environment variables to set on that container.
    :param labels: labels for the Job and its pods (values must be valid, see :func:`label_value`).
    :param ttl_seconds_after_finished: ``spec.ttlSecondsAfterFinished`` override, or None to keep.
    :param backoff_limit: ``spec.backoffLimit`` override, or None to keep.
    :raises ValueError: if the CronJob has no job template, no container named ``container_name``
        (the message lists the containers), a literal secret in its env (:func:`literal_secrets`), or
        ``name``/``labels``/``env`` are not valid.
    """
    cj_meta = cronjob.metadata or k8s.V1ObjectMeta()
    cj_ref = f"CronJob {cj_meta.namespace}/{cj_meta.name}"
    if secrets := literal_secrets(cronjob):
        raise ValueError(
            f"{cj_ref} sets {', '.join(secrets)} as literal env values; the Job spec is stored in XCom, so "
            "load secrets through valueFrom.secretKeyRef or envFrom (a Secret) instead"
        )
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
        ),
        spec=spec,
    )


def day_labels(dag_id: str, run_id: str, customer: str, day: dt.date) -> dict[str, str]:
    """The labels of one day's Job and its pods (``kubectl get jobs -l label-backfill/day=2026-01-05``).

    :param dag_id: the DAG's id.
    :param run_id: the DAG run's id (made a valid label value by :func:`label_value`, like the others).
    :param customer: customer id.
    :param day: UTC day.
    """
    return {
        "app.kubernetes.io/managed-by": "airflow",
        "label-backfill/dag-id": label_value(dag_id),
        "label-backfill/run-id": label_value(run_id),
        "label-backfill/customer": label_value(customer),
        "label-backfill/day": day.isoformat(),
    }
