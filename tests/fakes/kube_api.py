"""An in-process fake Kubernetes API server with a small Job controller, for tests.

Implements just what the official ``kubernetes`` client and ``kubernetes_asyncio`` (the provider's
trigger) call when a Job is created from a CronJob and watched to completion: CronJobs (read/list),
Jobs (create/read/read status/list/patch/delete with propagation policies), Pods (list by label
selector, read, read status, patch, delete, log with ``container``/``timestamps``/``follow``/
``tailLines``/``sinceSeconds``), events (always empty) and ``/version``. Unknown routes answer 404
and are recorded in :attr:`FakeKubernetes.unhandled`.

The job controller creates a pod for each new Job (labels ``job-name``, ``controller-uid`` and their
``batch.kubernetes.io/`` twins, the template's finalizers), lets it run for ``run_seconds``, asks
``on_job(job_dict)`` for a :class:`JobOutcome`, then finishes the pod and the Job (``Complete``, or a
new pod while failures are within ``backoffLimit``, then ``Failed``/``BackoffLimitExceeded``).

Deletion follows the API server and the garbage collector closely enough for ordering tests:

- A pod is deleted gracefully: it gets ``deletionTimestamp`` (now + grace period) and stays listed,
  still ``Running``, until its container exits (``on_job`` returns) or the grace period ends (the
  fake then marks it killed, exit code 137); then it disappears unless it still has finalizers
  (remove them with a PATCH). The grace period is the delete call's ``gracePeriodSeconds``, else
  the pod's ``terminationGracePeriodSeconds``, else ``default_termination_grace_period``.
  ``on_job`` cannot be interrupted: a pod whose callback writes must have a grace period longer
  than that work, or its writes would land after the pod was reported gone.
- Job deletion: ``Orphan`` (the API default for Jobs) removes the Job and leaves its pods running
  without owner; ``Background`` removes the Job at once and deletes its pods (so they outlive it
  while they terminate); ``Foreground`` keeps the Job with ``deletionTimestamp`` and the
  ``foregroundDeletion`` finalizer until its pods are gone, plus ``foreground_deletion_delay``.

Every create, deletion request and disappearance of a Job or pod is appended to
:attr:`FakeKubernetes.events` with a monotonic timestamp.

Authorization: every request is checked against the rules of the Role the project ships for the runner
(``include/k8s/rbac.yaml``), as the API server's RBAC authorizer would (verb from the method, ``list``
/``watch`` for collections, subresources as ``pods/log``, ``resourceNames``); a request no rule allows
answers 403 and is recorded in :attr:`FakeKubernetes.forbidden`, and every request's
``(verb, apiGroup, resource, name)`` in :attr:`FakeKubernetes.access`. So every Kubernetes test runs the
operator with exactly the shipped rights.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

RBAC_FILE = Path(__file__).resolve().parents[2] / "include" / "k8s" / "rbac.yaml"
CRONJOB_NAME = "cron-label-conversations"
CONTAINER_NAME = "label-conversations"
SIDECAR_NAME = "cloud-sql-proxy"
IMAGE = "registry.example.com/label-conversations:1.4.2"


@dataclass(frozen=True)
class JobOutcome:
    """What the fake job's pod did.

    :param succeeded: whether the main container exits 0.
    :param log: text the main container printed (one log line per line).
    :param exit_code: exit code of the main container; defaults to 0 / 1 from ``succeeded``.
    :param container: container the log belongs to; defaults to the fake's ``log_container``.
    """

    succeeded: bool = True
    log: str = "label-conversations: done\n"
    exit_code: int | None = None
    container: str | None = None


OnJob = Callable[[dict[str, Any]], JobOutcome]


@dataclass(frozen=True)
class FakeEvent:
    """One lifecycle step of a Job or pod, as :attr:`FakeKubernetes.events` records it.

    :param at: ``time.monotonic()`` when it happened.
    :param kind: ``job-created``, ``job-deletion-requested``, ``job-gone``, ``pod-created``,
        ``pod-deletion-requested``, ``pod-exited``, ``pod-killed`` or ``pod-gone``.
    :param name: the object's name.
    :param uid: the object's uid.
    """

    at: float
    kind: str
    name: str
    uid: str


def default_on_job(job: dict[str, Any]) -> JobOutcome:
    name = job["metadata"]["name"]
    return JobOutcome(True, f"starting {name}\nlabelled 3 conversations\n{name} done\n")


class ApiError(Exception):
    """Answered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _log_ts(moment: dt.datetime) -> str:
    # kubelet prefixes lines with RFC 3339 nanoseconds when timestamps=true
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind} "{name}" not found')


# --- label selectors -----------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*(?P<key>[^\s!=]+)\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(selector: str | None) -> Callable[[dict[str, str]], bool]:
    """Compile a Kubernetes label selector (``=``, ``==``, ``!=``, ``in``, ``notin``, ``k``, ``!k``)."""
    tests: list[Callable[[dict[str, str]], bool]] = []
    for req in _split_selector(selector or ""):
        if m := _SET_RE.match(req):
            key, values = m["key"], {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["op"] == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "=" in req:
            key, value = (s.strip() for s in re.split(r"==?", req, maxsplit=1))
            tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif req.startswith("!"):
            absent = req[1:].strip()
            tests.append(lambda labels, k=absent: k not in labels)
        else:
            tests.append(lambda labels, k=req: k in labels)
    return lambda labels: all(t(labels or {}) for t in tests)


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also good enough for strategic merge patches of labels)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


# --- the server ----------------------------------------------------------------------------------

NS = r"/namespaces/(?P<ns>[a-z0-9.-]+)"
NAME = r"(?P<name>[a-z0-9.-]+)"


class FakeKubernetes:
    """A fake kube-apiserver on 127.0.0.1 (random port) plus a minimal Job controller.

    :param on_job: called once per pod run with a copy of the Job; returns a :class:`JobOutcome`.
        May be replaced at any time (``fake.on_job = ...``).
    :param run_seconds: how long each pod stays ``Running`` before ``on_job`` is asked.
    :param pod_creation_delay: delay between Job creation and its first pod (0: the pod exists
        when the create call returns).
    :param log_container: container that receives ``JobOutcome.log`` when the outcome names none;
        defaults to the last container of the pod. Other containers log one line of their own.
    :param foreground_deletion_delay: how long a Job deleted with ``Foreground`` propagation stays
        visible (with ``deletionTimestamp``) after its pods are gone.
    :param default_termination_grace_period: grace period of pods whose spec sets none. The API
        server defaults it to 30 s; 0 makes such pods vanish as soon as they are deleted.
    :param token: bearer token the server requires.
    :param pod_startup_seconds: how long each pod stays ``Pending`` (``ContainerCreating``) before it runs:
        scheduling, image pull, container start (the seeds' production pods: ~15 s).
    """

    def __init__(
        self,
        *,
        on_job: OnJob | None = None,
        run_seconds: float = 0.3,
        pod_creation_delay: float = 0.0,
        log_container: str | None = None,
        foreground_deletion_delay: float = 0.3,
        default_termination_grace_period: float = 0.0,
        token: str | None = None,
        role_rules: list[dict[str, Any]] | None = None,
        pod_startup_seconds: float = 0.0,
    ) -> None:
        self.on_job: OnJob = on_job or default_on_job
        #: the rules every request must satisfy (default: the shipped Role of include/k8s/rbac.yaml)
        self.role_rules = shipped_role_rules() if role_rules is None else role_rules
        #: (verb, apiGroup, resource, name) of every request, in order
        self.access: list[tuple[str, str, str, str | None]] = []
        #: the requests the Role did not allow (answered 403)
        self.forbidden: list[tuple[str, str, str, str | None]] = []
        #: forbidden requests a test provokes on purpose (the fixture fails on any other)
        self.expected_forbidden: list[tuple[str, str, str, str | None]] = []
        self.run_seconds = run_seconds
        self.pod_creation_delay = pod_creation_delay
        self.pod_startup_seconds = pod_startup_seconds
        self.log_container = log_container
        self.foreground_deletion_delay = foreground_deletion_delay
        self.default_termination_grace_period = default_termination_grace_period
        self.token = token or secrets.token_hex(16)
        #: latest manifest POSTed for each Job name (the request body, before server defaults)
        self.jobs: dict[str, dict[str, Any]] = {}
        #: every Job manifest POSTed, in order
        self.created_jobs: list[dict[str, Any]] = []
        #: (namespace, name, propagationPolicy) of every Job deletion, in order
        self.deleted_jobs: list[tuple[str, str, str]] = []
        #: (method, path, query) of every request, in order
        self.requests: list[tuple[str, str, str]] = []
        #: requests no route matched
        self.unhandled: list[tuple[str, str]] = []
        #: lifecycle of every Job and pod, in order
        self.events: list[FakeEvent] = []
        self._cronjobs: dict[tuple[str, str], dict] = {}
        self._live_jobs: dict[tuple[str, str], dict] = {}
        self._pods: dict[tuple[str, str], dict] = {}
        self._logs: dict[tuple[str, str, str], list[tuple[dt.datetime, str]]] = {}
        self._foreground_finishing: set[str] = set()
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = 1000
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._tmpdir: Path | None = None
        self._stopping = threading.Event()
        self._routes = self._build_routes()

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-kube-api",
            daemon=True,
        )
        self._thread.start()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="fake-kube-"))
        self._write_kubeconfig()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for worker in self._workers:
            worker.join(timeout=5)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeKubernetes is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def kubeconfig_path(self) -> str:
        assert self._tmpdir is not None, "FakeKubernetes is not started"
        return str(self._tmpdir / "kubeconfig.json")

    def _write_kubeconfig(self) -> None:
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url, "insecure-skip-tls-verify": True}}],
            "users": [{"name": "fake", "user": {"token": self.token}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "default"}}
            ],
            "current-context": "fake",
        }
        Path(self.kubeconfig_path).write_text(json.dumps(kubeconfig, indent=2))  # JSON is YAML

    def airflow_connection(self, namespace: str = "default") -> str:
        """Value for ``AIRFLOW_CONN_KUBERNETES_DEFAULT`` (JSON form) pointing at this server."""
        return json.dumps(
            {
                "conn_type": "kubernetes",
                "extra": {"kube_config_path": self.kubeconfig_path, "namespace": namespace},
            }
        )

    # -- test helpers -----------------------------------------------------------------------------

    def add_cronjob(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Store a CronJob (server fields such as ``uid`` are filled in); return the stored object."""
        obj = copy.deepcopy(manifest)
        obj.setdefault("apiVersion", "batch/v1")
        obj.setdefault("kind", "CronJob")
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        with self._lock:
            self._fill_server_meta(meta)
            obj.setdefault("status", {})
            self._cronjobs[(meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    def get_cronjob(self, name: str, namespace: str = "default") -> dict[str, Any]:
        """The stored CronJob."""
        with self._lock:
            return copy.deepcopy(self._cronjobs[(namespace, name)])

    def create_job(self, manifest: dict[str, Any], namespace: str = "default") -> dict[str, Any]:
        """Create a Job as if POSTed by a client (it runs through the job controller)."""
        return self._create_job(namespace, copy.deepcopy(manifest))

    def get_job(self, name: str, namespace: str = "default") -> dict[str, Any] | None:
        """The live Job object (with status), or None."""
        with self._lock:
            job = self._live_jobs.get((namespace, name))
            return copy.deepcopy(job) if job else None

    def list_pods(self, label_selector: str | None = None, namespace: str = "default") -> list[dict]:
        match = parse_label_selector(label_selector)
        with self._lock:
            return [
                copy.deepcopy(p)
                for (ns, _), p in sorted(self._pods.items())
                if ns == namespace and match(p["metadata"].get("labels", {}))
            ]

    def event_times(self, kind: str, name: str) -> list[float]:
        """When each ``kind`` event (see :class:`FakeEvent`) of the object ``name`` happened, in order."""
        with self._lock:
            return [e.at for e in self.events if e.kind == kind and e.name == name]

    def wait_for_job(self, name: str, namespace: str = "default", timeout: float = 10.0) -> dict[str, Any]:
        """Block until the Job has a final condition; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                job = self._live_jobs.get((namespace, name))
                if job and _final_condition(job):
                    return copy.deepcopy(job)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"job {namespace}/{name} did not finish within {timeout}s")
                self._changed.wait(remaining)

    # -- object bookkeeping -----------------------------------------------------------------------

    def _fill_server_meta(self, meta: dict) -> None:
        self._rv += 1
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _ts(_now()))
        meta["resourceVersion"] = str(self._rv)
        meta.setdefault("generation", 1)

    def _touch(self, obj: dict) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._changed.notify_all()

    def _event(self, kind: str, obj: dict) -> None:
        meta = obj["metadata"]
        self.events.append(FakeEvent(time.monotonic(), kind, meta["name"], meta["uid"]))

    def _list(self, kind: str, items: list[dict]) -> dict:
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    # -- routes -----------------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Callable[..., Any]]]:
        routes = [
            ("GET", r"/version", self._get_version),
            ("GET", rf"/apis/batch/v1{NS}/cronjobs", self._list_cronjobs),
            ("GET", rf"/apis/batch/v1{NS}/cronjobs/{NAME}", self._read_cronjob),
            ("POST", rf"/apis/batch/v1{NS}/jobs", self._post_job),
            ("GET", rf"/apis/batch/v1{NS}/jobs", self._list_jobs),
            ("GET", rf"/apis/batch/v1{NS}/jobs/{NAME}(?:/status)?", self._read_job),
            ("PATCH", rf"/apis/batch/v1{NS}/jobs/{NAME}", self._patch_job),
            ("DELETE", rf"/apis/batch/v1{NS}/jobs/{NAME}", self._delete_job),
            ("GET", rf"/api/v1{NS}/pods", self._list_pods),
            ("GET", rf"/api/v1{NS}/pods/{NAME}(?:/status)?", self._read_pod),
            ("GET", rf"/api/v1{NS}/pods/{NAME}/log", self._read_pod_log),
            ("PATCH", rf"/api/v1{NS}/pods/{NAME}", self._patch_pod),
            ("DELETE", rf"/api/v1{NS}/pods/{NAME}", self._delete_pod),
            ("GET", rf"/api/v1{NS}/events", self._list_events),
            ("GET", r"/apis/events.k8s.io/v1" + NS + r"/events", self._list_events),
        ]
        return [(method, re.compile(f"^{pattern}$"), fn) for method, pattern, fn in routes]

    def _authorize(self, method: str, path: str, query: dict[str, list[str]]) -> None:
        """Refuse (403) a request the Role's rules do not allow; non-resource paths are open (discovery)."""
        match = _RESOURCE_PATH.match(path)
        if match is None:
            return
        group, resource = match["group"] or "", match["resource"]
        name, sub = match["name"], match["sub"]
        if sub:
            resource = f"{resource}/{sub}"
        if method == "GET":
            verb = "get" if name else ("watch" if _flag(query, "watch") else "list")
        else:
            verb = {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method) or (
                "delete" if name else "deletecollection"
            )
        request = (verb, group, resource, name)
        self.access.append(request)
        if not any(_rule_allows(rule, *request) for rule in self.role_rules):
            self.forbidden.append(request)
            raise ApiError(
                403,
                "Forbidden",
                f'{resource} "{name or ""}" is forbidden: the Role of include/k8s/rbac.yaml does not allow '
                f'verb "{verb}" on "{resource}" in API group "{group}"',
            )

    def _dispatch(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Any:
        for route_method, pattern, fn in self._routes:
            if route_method == method and (m := pattern.match(path)):
                return fn(query=query, body=body, **m.groupdict())
        self.unhandled.append((method, path))
        raise ApiError(404, "NotFound", f"the fake Kubernetes API has no route for {method} {path}")

    def _get_version(self, **_: Any) -> dict:
        return {"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "platform": "linux/amd64"}

    def _list_cronjobs(self, ns: str, query: dict, **_: Any) -> dict:
        match = parse_label_selector(_q(query, "labelSelector"))
        with self._lock:
            items = [
                copy.deepcopy(c) for (n, _), c in self._cronjobs.items() if n == ns and match(_labels(c))
            ]
            return self._list("CronJobList", items) | {"apiVersion": "batch/v1"}

    def _read_cronjob(self, ns: str, name: str, **_: Any) -> dict:
        with self._lock:
            if (ns, name) not in self._cronjobs:
                raise _not_found("cronjobs.batch", name)
            return copy.deepcopy(self._cronjobs[(ns, name)])

    def _post_job(self, ns: str, body: Any, **_: Any) -> tuple[int, dict]:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "a Job body is required")
        return HTTPStatus.CREATED, self._create_job(ns, body)

    def _list_jobs(self, ns: str, query: dict, **_: Any) -> dict:
        match = parse_label_selector(_q(query, "labelSelector"))
        with self._lock:
            items = [
                copy.deepcopy(j) for (n, _), j in self._live_jobs.items() if n == ns and match(_labels(j))
            ]
            return self._list("JobList", items) | {"apiVersion": "batch/v1"}

    def _read_job(self, ns: str, name: str, **_: Any) -> dict:
        with self._lock:
            if (ns, name) not in self._live_jobs:
                raise _not_found("jobs.batch", name)
            return copy.deepcopy(self._live_jobs[(ns, name)])

    def _patch_job(self, ns: str, name: str, body: Any, **_: Any) -> dict:
        with self._lock:
            job = self._live_jobs.get((ns, name))
            if job is None:
                raise _not_found("jobs.batch", name)
            patched = _merge_patch(job, body)
            job.clear()
            job.update(patched)
            self._touch(job)
            return copy.deepcopy(job)

    def _delete_job(self, ns: str, name: str, query: dict, body: Any, **_: Any) -> dict:
        policy = _q(query, "propagationPolicy") or (body or {}).get("propagationPolicy") or "Orphan"
        with self._lock:
            job = self._live_jobs.get((ns, name))
            if job is None:
                raise _not_found("jobs.batch", name)
            if policy not in ("Orphan", "Background", "Foreground"):
                raise ApiError(400, "BadRequest", f"invalid propagationPolicy {policy!r}")
            self.deleted_jobs.append((ns, name, policy))
            self._event("job-deletion-requested", job)
            uid = job["metadata"]["uid"]
            owned = [key for key, pod in self._pods.items() if _owner_uid(pod) == uid]
            if policy == "Orphan":
                for key in owned:
                    self._pods[key]["metadata"].pop("ownerReferences", None)
                self._remove_job(ns, name)
            elif policy == "Background":
                self._remove_job(ns, name)
                for key in owned:  # the garbage collector deletes them; they terminate after the Job is gone
                    self._request_pod_deletion(key)
            elif not job["metadata"].get("deletionTimestamp"):
                job["metadata"]["deletionTimestamp"] = _ts(_now())
                job["metadata"]["finalizers"] = ["foregroundDeletion"]
                for key in owned:
                    self._request_pod_deletion(key)
                self._check_foreground_deletion(ns, name, uid)
            self._touch(job)
            return _status_body(200, "", "", {"name": name, "group": "batch", "kind": "jobs", "uid": uid})

    def _remove_job(self, ns: str, name: str) -> None:
        job = self._live_jobs.pop((ns, name))
        self._event("job-gone", job)
        self._changed.notify_all()

    def _check_foreground_deletion(self, ns: str, name: str, uid: str) -> None:
        job = self._live_jobs.get((ns, name))
        if job is None or job["metadata"]["uid"] != uid or not job["metadata"].get("deletionTimestamp"):
            return
        if uid in self._foreground_finishing or any(_owner_uid(p) == uid for p in self._pods.values()):
            return
        self._foreground_finishing.add(uid)
        self._spawn(self._finish_foreground_deletion, ns, name, uid)

    def _finish_foreground_deletion(self, ns: str, name: str, uid: str) -> None:
        time.sleep(self.foreground_deletion_delay)
        with self._lock:
            job = self._live_jobs.get((ns, name))
            if job is not None and job["metadata"]["uid"] == uid:
                self._remove_job(ns, name)

    def _request_pod_deletion(self, key: tuple[str, str], grace: float | None = None) -> dict:
        """Start a graceful deletion (the caller holds the lock); return the pod as it is now."""
        pod = self._pods[key]
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp"):
            if grace is None:
                grace = pod["spec"].get("terminationGracePeriodSeconds")
            if grace is None:
                grace = self.default_termination_grace_period
            if _pod_finished(pod):
                grace = 0  # nothing left to stop
            meta["deletionTimestamp"] = _ts(_now() + dt.timedelta(seconds=grace))
            meta["deletionGracePeriodSeconds"] = int(grace)
            self._event("pod-deletion-requested", pod)
            if grace > 0:
                self._spawn(self._kill_after_grace, key, meta["uid"], grace)
            else:
                self._kill(pod)
            self._touch(pod)
        snapshot = copy.deepcopy(pod)
        self._reap_pod(key)
        return snapshot

    def _kill_after_grace(self, key: tuple[str, str], uid: str, grace: float) -> None:
        if self._stopping.wait(grace):
            return
        with self._lock:
            pod = self._pods.get(key)
            if pod is not None and pod["metadata"]["uid"] == uid:
                self._kill(pod)
                self._reap_pod(key)

    def _kill(self, pod: dict) -> None:
        if _pod_finished(pod):
            return
        self._finish_pod(pod, JobOutcome(False, "", exit_code=137))
        self._event("pod-killed", pod)

    def _reap_pod(self, key: tuple[str, str]) -> None:
        """Remove a pod once it is being deleted, its containers have exited and no finalizer holds it."""
        pod = self._pods.get(key)
        meta = pod["metadata"] if pod else {}
        if (
            pod is None
            or not meta.get("deletionTimestamp")
            or not _pod_finished(pod)
            or meta.get("finalizers")
        ):
            return
        del self._pods[key]
        self._event("pod-gone", pod)
        self._changed.notify_all()
        for ref in meta.get("ownerReferences") or []:
            if ref.get("kind") == "Job":
                self._check_foreground_deletion(key[0], ref["name"], ref["uid"])

    def _list_pods(self, ns: str, query: dict, **_: Any) -> dict:
        return self._list("PodList", self.list_pods(_q(query, "labelSelector"), ns))

    def _read_pod(self, ns: str, name: str, **_: Any) -> dict:
        with self._lock:
            if (ns, name) not in self._pods:
                raise _not_found("pods", name)
            return copy.deepcopy(self._pods[(ns, name)])

    def _patch_pod(self, ns: str, name: str, body: Any, **_: Any) -> dict:
        with self._lock:
            pod = self._pods.get((ns, name))
            if pod is None:
                raise _not_found("pods", name)
            if isinstance(body, list):  # JSON patch: only "add"/"replace" of labels is needed
                for op in body:
                    if op.get("op") in ("add", "replace") and op["path"].startswith("/metadata/labels/"):
                        key = (
                            op["path"].removeprefix("/metadata/labels/").replace("~1", "/").replace("~0", "~")
                        )
                        pod["metadata"].setdefault("labels", {})[key] = op["value"]
            else:
                patched = _merge_patch(pod, body)
                pod.clear()
                pod.update(patched)
            self._touch(pod)
            result = copy.deepcopy(pod)
            self._reap_pod((ns, name))  # the patch may have removed the last finalizer
            return result

    def _delete_pod(self, ns: str, name: str, query: dict, body: Any, **_: Any) -> dict:
        grace = _q(query, "gracePeriodSeconds")
        if grace is None and isinstance(body, dict):
            grace = body.get("gracePeriodSeconds")
        with self._lock:
            if (ns, name) not in self._pods:
                raise _not_found("pods", name)
            return self._request_pod_deletion((ns, name), None if grace is None else float(grace))

    def _list_events(self, **_: Any) -> dict:
        with self._lock:
            return self._list("EventList", [])

    def _read_pod_log(self, ns: str, name: str, query: dict, **_: Any) -> tuple[int, str]:
        follow = _flag(query, "follow")
        with self._changed:
            pod = self._pods.get((ns, name))
            if pod is None:
                raise _not_found("pods", name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            container = _q(query, "container")
            if not container:
                if len(names) > 1:
                    raise ApiError(
                        400,
                        "BadRequest",
                        f"a container name must be specified for pod {name}, choose one of: {names}",
                    )
                container = names[0]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            deadline = time.monotonic() + 30
            while follow and not _pod_finished(pod) and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (ns, name) not in self._pods:
                    break
                self._changed.wait(remaining)
            if pod["status"].get("phase") == "Pending":
                raise ApiError(
                    400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start'
                )
            lines = list(self._logs.get((ns, name, container), []))
        if since := _q(query, "sinceSeconds"):
            cutoff = _now() - dt.timedelta(seconds=int(since))
            lines = [(t, line) for t, line in lines if t >= cutoff]
        if tail := _q(query, "tailLines"):
            lines = lines[-int(tail) :] if int(tail) else []
        if _flag(query, "timestamps"):
            return 200, "".join(f"{_log_ts(t)} {line}\n" for t, line in lines)
        return 200, "".join(f"{line}\n" for _, line in lines)

    # -- job controller ---------------------------------------------------------------------------

    def _create_job(self, ns: str, manifest: dict) -> dict:
        meta = manifest.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", "Job.batch is invalid: metadata.name: Required value")
        if meta.get("namespace", ns) != ns:
            raise ApiError(400, "BadRequest", "the namespace of the provided object does not match")
        with self._lock:
            if (ns, name) in self._live_jobs:
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            self.jobs[name] = copy.deepcopy(manifest)
            self.created_jobs.append(copy.deepcopy(manifest))
            job = copy.deepcopy(manifest)
            job["apiVersion"], job["kind"] = "batch/v1", "Job"
            meta = job.setdefault("metadata", {})
            meta["namespace"] = ns
            self._fill_server_meta(meta)
            uid = meta["uid"]
            spec = job.setdefault("spec", {})
            for key, default in (
                ("backoffLimit", 6),
                ("completions", 1),
                ("parallelism", 1),
                ("completionMode", "NonIndexed"),
                ("suspend", False),
            ):
                spec.setdefault(key, default)
            spec.setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
            template_meta["labels"] = {
                **(template_meta.get("labels") or {}),
                "controller-uid": uid,
                "batch.kubernetes.io/controller-uid": uid,
                "job-name": name,
                "batch.kubernetes.io/job-name": name,
            }
            job["status"] = {}
            self._live_jobs[(ns, name)] = job
            self._event("job-created", job)
            if self.pod_creation_delay <= 0:
                pod_name = self._start_pod(job)
            else:
                pod_name = None
            self._touch(job)
            self._spawn(self._run_job, ns, name, uid, pod_name)
            return copy.deepcopy(job)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        worker = threading.Thread(target=target, args=args, daemon=True, name=f"fake-kube-{target.__name__}")
        self._workers.append(worker)
        worker.start()

    def _job_alive(self, ns: str, name: str, uid: str) -> dict | None:
        job = self._live_jobs.get((ns, name))
        if job is None or job["metadata"]["uid"] != uid or job["metadata"].get("deletionTimestamp"):
            return None
        return job

    def _start_pod(self, job: dict) -> str:
        meta, template = job["metadata"], job["spec"]["template"]
        pod_name = f"{meta['name'][:57]}-{secrets.token_hex(3)[:5]}"
        now = _ts(_now())
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": pod_name,
                "namespace": meta["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": dict(template["metadata"].get("annotations") or {}),
                **({"finalizers": list(f)} if (f := template["metadata"].get("finalizers")) else {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
            "status": {
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c.get("image", ""),
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"waiting": {"reason": "ContainerCreating"}},
                    }
                    for c in (template.get("spec") or {}).get("containers", [])
                ],
            },
        }
        self._fill_server_meta(pod["metadata"])
        self._pods[(meta["namespace"], pod_name)] = pod
        self._event("pod-created", pod)
        status = job["status"]
        status.setdefault("startTime", now)
        status["active"] = status.get("active", 0) + 1
        status.setdefault("ready", 0)
        self._touch(pod)
        return pod_name

    def _run_job(self, ns: str, name: str, uid: str, pod_name: str | None) -> None:
        if pod_name is None:
            time.sleep(self.pod_creation_delay)
            with self._lock:
                job = self._job_alive(ns, name, uid)
                if job is None:
                    return
                pod_name = self._start_pod(job)
        while not self._stopping.is_set():
            if self.pod_startup_seconds > 0 and self._stopping.wait(self.pod_startup_seconds):
                return  # the pod was Pending (ContainerCreating) until then
            with self._lock:
                job = self._job_alive(ns, name, uid)
                pod = self._pods.get((ns, pod_name))
                if job is None or pod is None or _pod_finished(pod):
                    return
                self._set_running(pod)
                job_copy = copy.deepcopy(job)
            time.sleep(self.run_seconds)
            try:
                outcome = self.on_job(job_copy)
            except Exception as err:  # a broken callback is a failed pod, not a hung test
                outcome = JobOutcome(False, f"fake on_job raised {err!r}\n")
            with self._lock:
                pod = self._pods.get((ns, pod_name))
                if pod is None or _pod_finished(pod):  # deleted or killed meanwhile: the outcome is lost
                    return
                self._finish_pod(pod, outcome)
                self._reap_pod((ns, pod_name))
                job = self._job_alive(ns, name, uid)
                if job is None:  # an orphaned pod still finishes; a deleted Job counts nothing
                    return
                status = job["status"]
                status["active"] = max(status.get("active", 1) - 1, 0)
                status["ready"] = 0
                if outcome.succeeded:
                    status["succeeded"] = status.get("succeeded", 0) + 1
                    self._finish_job(
                        job, "Complete", "CompletionsReached", "Reached expected number of succeeded pods"
                    )
                    return
                status["failed"] = status.get("failed", 0) + 1
                if status["failed"] > job["spec"]["backoffLimit"]:
                    self._finish_job(
                        job, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
                    )
                    return
                pod_name = self._start_pod(job)
                self._touch(job)

    def _set_running(self, pod: dict) -> None:
        now = _ts(_now())
        pod["status"]["phase"] = "Running"
        pod["status"]["startTime"] = now
        for cs in pod["status"]["containerStatuses"]:
            cs.update(ready=True, started=True, state={"running": {"startedAt": now}})
        self._touch(pod)

    def _finish_pod(self, pod: dict, outcome: JobOutcome) -> None:
        now = _now()
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        main = outcome.container or self.log_container or (names[-1] if names else "")
        exit_code = outcome.exit_code if outcome.exit_code is not None else (0 if outcome.succeeded else 1)
        for cs in pod["status"]["containerStatuses"]:
            is_main = cs["name"] == main
            code = exit_code if is_main else 0
            text = outcome.log if is_main else f"{cs['name']}: fake sidecar log line\n"
            self._logs[(ns, name, cs["name"])] = [(now, line) for line in text.splitlines()]
            started = cs["state"].get("running", {}).get("startedAt", _ts(now))
            cs.update(
                ready=False,
                started=False,
                state={
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started,
                        "finishedAt": _ts(now),
                        "containerID": f"containerd://{secrets.token_hex(8)}",
                    }
                },
            )
        pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
        self._event("pod-exited", pod)
        self._touch(pod)

    def _finish_job(self, job: dict, kind: str, reason: str, message: str) -> None:
        now = _ts(_now())
        target = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
        conditions = [
            {
                "type": t,
                "status": "True",
                "reason": reason,
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
            for t in (target, kind)
        ]
        job["status"]["conditions"] = conditions
        if kind == "Complete":
            job["status"]["completionTime"] = now
        self._touch(job)


_RESOURCE_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)/namespaces/[^/]+/(?P<resource>[^/]+)"
    r"(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)


def shipped_role_rules() -> list[dict[str, Any]]:
    """The rules of the Role in include/k8s/rbac.yaml (the one the runner's ServiceAccount is bound to)."""
    import yaml

    docs = [d for d in yaml.safe_load_all(RBAC_FILE.read_text()) if d]
    (role,) = [d for d in docs if d.get("kind") == "Role"]
    return role["rules"]


def _rule_allows(rule: dict[str, Any], verb: str, group: str, resource: str, name: str | None) -> bool:
    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    if not (has(rule.get("verbs", []), verb) and has(rule.get("apiGroups", []), group)):
        return False
    if not has(rule.get("resources", []), resource):
        return False
    names = rule.get("resourceNames")
    return not names or (name is not None and name in names)


def _q(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[-1] if values else None


def _flag(query: dict[str, list[str]], key: str) -> bool:
    # the API server parses booleans like Go's strconv.ParseBool; the Python client sends "True"
    return _q(query, key) in ("1", "t", "T", "true", "TRUE", "True")


def _labels(obj: dict) -> dict[str, str]:
    return obj.get("metadata", {}).get("labels") or {}


def _owner_uid(obj: dict) -> str | None:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return next((r["uid"] for r in refs if r.get("controller")), None)


def _pod_finished(pod: dict) -> bool:
    return pod["status"].get("phase") in ("Succeeded", "Failed")


def _final_condition(job: dict) -> str | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond["type"] in ("Complete", "Failed") and cond["status"] == "True":
            return cond["type"]
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeKubernetes

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; requests are recorded
        pass

    def _handle(self) -> None:
        fake = self.server_fake
        parts = urlsplit(self.path)
        fake.requests.append((self.command, parts.path, parts.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            fake._authorize(self.command, parts.path, parse_qs(parts.query))
            body = json.loads(raw) if raw else None
            result = fake._dispatch(self.command, parts.path, parse_qs(parts.query), body)
            code, payload = result if isinstance(result, tuple) else (200, result)
        except ApiError as err:
            code, payload = err.code, _status_body(err.code, err.reason, err.message)
        except json.JSONDecodeError as err:
            code, payload = 400, _status_body(400, "BadRequest", f"invalid JSON body: {err}")
        if isinstance(payload, str):
            data, ctype = payload.encode(), "text/plain"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json"
        self.send_response(int(code))
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


# --- the label-conversations CronJob and the pytest fixture ---------------------------------------


def label_conversations_cronjob(
    namespace: str = "default", *, termination_grace_period: int | None = None
) -> dict[str, Any]:
    """A realistic ``cron-label-conversations`` CronJob; the sidecar is listed first on purpose.

    :param termination_grace_period: the pods' ``terminationGracePeriodSeconds``, else unset.
    """
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": CRONJOB_NAME,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "label-conversations"},
        },
        "spec": {
            "schedule": "15 * * * *",
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 1,
            "jobTemplate": {
                "metadata": {
                    "labels": {"app.kubernetes.io/name": "label-conversations", "team": "ml-platform"},
                    "annotations": {"owner": "ml-platform@example.com"},
                },
                "spec": {
                    "backoffLimit": 0,
                    "activeDeadlineSeconds": 3600,
                    "template": {
                        "metadata": {
                            "labels": {"app.kubernetes.io/name": "label-conversations"},
                            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                        },
                        "spec": {
                            "serviceAccountName": "label-conversations",
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": SIDECAR_NAME,
                                    "image": "gcr.io/cloud-sql-connectors/cloud-sql-proxy:2.14.0",
                                    "args": ["--port=5432", "--quitquitquit", "project:region:instance"],
                                    "env": [{"name": "LOG_LEVEL", "value": "warning"}],
                                    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
                                },
                                {
                                    "name": CONTAINER_NAME,
                                    "image": IMAGE,
                                    "command": ["python", "-m", "label_conversations"],
                                    "envFrom": [{"secretRef": {"name": "label-conversations-db"}}],
                                    "env": [
                                        {"name": "LOG_LEVEL", "value": "info"},
                                        {
                                            "name": "FILTER_CUSTOMER_IN_LABEL_CONVERSATIONS_WITH_AGENT_ASSISTANCE",
                                            "value": "",
                                        },
                                    ],
                                    "resources": {
                                        "requests": {"cpu": "500m", "memory": "1Gi"},
                                        "limits": {"cpu": "2", "memory": "2Gi"},
                                    },
                                },
                            ],
                        },
                    },
                },
            },
        },
    }
    if termination_grace_period is not None:
        pod_spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        pod_spec["terminationGracePeriodSeconds"] = termination_grace_period
    return cronjob


@pytest.fixture
def fake_kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    """A started :class:`FakeKubernetes` with ``cron-label-conversations`` in ``default``.

    Also points the Airflow connection ``kubernetes_default`` at it through
    ``AIRFLOW_CONN_KUBERNETES_DEFAULT`` (``kube_config_path`` + ``namespace`` extras). Fails the test when
    a request was forbidden by the shipped Role other than those in ``expected_forbidden``.
    """
    fake = FakeKubernetes(log_container=CONTAINER_NAME)
    fake.start()
    try:
        fake.add_cronjob(label_conversations_cronjob())
        monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_DEFAULT", fake.airflow_connection())
        yield fake
        # a 403 the code under test swallowed (the provider logs some cleanup errors only) fails the test too
        unexpected = [request for request in fake.forbidden if request not in fake.expected_forbidden]
        assert unexpected == [], f"requests the shipped Role (include/k8s/rbac.yaml) forbids: {unexpected}"
    finally:
        fake.stop()


# --- standalone: python -m tests.fakes.kube_api (benchmarks/bench_scheduler.py runs Airflow against it) -------


def main(argv: list[str] | None = None) -> int:
    """Serve the fake with ``cron-label-conversations`` until SIGTERM/SIGINT; print one JSON line with its URL,
    kubeconfig and the ``AIRFLOW_CONN_KUBERNETES_DEFAULT`` value. Its Jobs write nothing (``default_on_job``):
    a pod starts, runs ``--run-seconds`` and succeeds."""
    import argparse
    import signal
    import sys

    parser = argparse.ArgumentParser(prog="python -m tests.fakes.kube_api", description=main.__doc__)
    parser.add_argument(
        "--pod-startup-seconds", type=float, default=15.0, help="Pending time of each pod (15)"
    )
    parser.add_argument("--run-seconds", type=float, default=0.3, help="Running time of each pod (0.3)")
    args = parser.parse_args(argv)
    fake = FakeKubernetes(
        log_container=CONTAINER_NAME,
        pod_startup_seconds=args.pod_startup_seconds,
        run_seconds=args.run_seconds,
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with fake:
        fake.add_cronjob(label_conversations_cronjob())
        info = {
            "url": fake.url,
            "kubeconfig": fake.kubeconfig_path,
            "airflow_connection": fake.airflow_connection(),
        }
        print(json.dumps(info), flush=True)
        stop.wait()
        print(
            json.dumps(
                {"jobs_created": len(fake.created_jobs), "forbidden": [list(r) for r in fake.forbidden]}
            ),
            file=sys.stderr,
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
