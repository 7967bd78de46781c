"""A running Airflow's REST API (v2), for the dev tools that drive ``scripts/airflow.sh`` instances:
``make demo-fleet``, the scheduler benchmarks and tests. Standard library only; nothing here imports Airflow
or chdb (the instance's task processes must be the only ones opening the chdb data directory).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

FINISHED = frozenset({"success", "failed"})


@dataclass
class AirflowApi:
    """:param url: the api-server, e.g. ``http://127.0.0.1:8080``; ``user`` / ``password``: SimpleAuthManager's."""

    url: str
    user: str
    password: str
    timeout: float = 90.0
    _token: str = field(default="", repr=False)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        if not self._token:
            self._token = self._login()
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except TimeoutError:  # a loaded 2-core machine answers late: ask again within the bound
                if time.monotonic() > deadline:
                    raise

    def _login(self) -> str:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return json.load(resp)["access_token"]

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/dags/{urllib.parse.quote(dag_id)}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict[str, Any], run_id: str | None = None) -> str:
        body: dict[str, Any] = {"conf": conf, "logical_date": None}
        if run_id:
            body["dag_run_id"] = run_id
        return self._request("POST", f"/dags/{urllib.parse.quote(dag_id)}/dagRuns", body)["dag_run_id"]

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self._request(
            "GET", f"/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}"
        )

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/dags/{urllib.parse.quote(dag_id)}/dagRuns?limit=100")["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{urllib.parse.quote(dag_id)}/dagRuns/{urllib.parse.quote(run_id)}/taskInstances?limit=1000"
        return self._request("GET", path)["task_instances"]

    def wait(self, dag_id: str, run_id: str, timeout: float, poll: float = 3.0) -> str:
        """The run's final state; ``TimeoutError`` when it is not finished after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run(dag_id, run_id)["state"]
            if state in FINISHED:
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s")
            time.sleep(poll)
