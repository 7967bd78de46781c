"""make bench, scheduler phases: 49-day repairs under the real scheduler (issue 14, goals 2 and 4).

Each phase starts its own Airflow with ``scripts/airflow.sh --background`` (api-server, scheduler,
dag-processor, triggerer; LocalExecutor) on a free port in a temporary folder, as tests/ui does, seeds the
embedded stack with ``python -m label_backfill.dev.simulate --scale small`` (alaska-air, horizon-air and
sun-country, 2,500 conversations a day over 2026-02-01..2026-02-14), triggers the backfill through the REST API
and polls it until it ends. Times come from outside (trigger to end) and from the task instances.

- ``local``: the embedded stack's day runner (the reference job in the task process, Postgres and chdb for
  real), ``max_parallel_days`` 8, alaska-air over 49 days (2025-12-28..2026-02-14: 14 days hold data, 35 are
  empty). Goal: under 2 minutes.
- ``kubernetes``: ``LabelDayKubernetesOperator`` against the fake Kubernetes API server
  (``python -m tests.fakes.kube_api``, the shipped RBAC Role enforced) whose pods stay Pending for
  ``--pod-startup-seconds`` (15, the seeds' figure) and then succeed WITHOUT WRITING: the data path is
  simulated (its real cost is the ``local`` phase and bench.py). Validate, preflight, the range delete,
  the mutation wait and verify run for real on the embedded stack; verify therefore finds the days empty and
  the run ends failed, as it must. Measured: the label_day phase (first day started to last day ended) and
  the run. Goal: 49 days under 3 minutes, beside the seeds' production 16.5 minutes.

Run alone: ``.venv/bin/python benchmarks/bench_scheduler.py [--phase local|kubernetes] [--keep]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PY = str(REPO / ".venv" / "bin" / "python")
DAG_ID = "conversation_labels_backfill"
CUSTOMER, FIRST, LAST = (
    "alaska-air",
    "2025-12-28",
    "2026-02-14",
)  # 49 days; the small scale seeds 02-01..02-14
SEEDS_PRODUCTION_SECONDS = 16.5 * 60  # the seeds' production repair (data-analysis-alaska-air-backfill.md)
ISSUE_LOCAL_SECONDS = 8 * 60  # issue 14: 49 small-scale days, one task at a time (~10 s a day)
GOALS = {"local": 120.0, "kubernetes": 180.0}
API_TIMEOUT = 60


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Airflow:
    """One Airflow of scripts/airflow.sh in ``root``, reached through its REST API."""

    def __init__(self, root: Path, extra_env: dict[str, str]) -> None:
        self.root, self.port = root, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the caller's AIRFLOW_* / LABEL_BACKFILL_* (a make bench shell, a test session) do not apply
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LABEL_BACKFILL_"))}
        self.env.update(
            {
                "LABEL_BACKFILL_LOCAL_DIR": str(root / "stack"),
                "AIRFLOW_HOME": str(root / "airflow"),
                "LABEL_BACKFILL_REPORT_DIR": str(root / "reports"),
                "AIRFLOW_PORT": str(self.port),
                "AIRFLOW_READY_TIMEOUT": "240",
                "PYTHONUNBUFFERED": "1",
                **extra_env,
            }
        )
        self._token: str | None = None

    def run(self, argv: list[str], what: str, timeout: float = 600) -> str:
        proc = subprocess.run(argv, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode:
            raise SystemExit(
                f"{what} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc.stdout

    def start(self) -> None:
        self.run(["bash", "scripts/airflow.sh", "--background"], "scripts/airflow.sh --background", 300)

    def stop(self) -> None:
        subprocess.run(
            ["bash", "scripts/airflow.sh", "stop"], cwd=REPO, env=self.env, capture_output=True, timeout=120
        )
        subprocess.run(
            [PY, "-m", "label_backfill.dev.stack", "clean"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            timeout=60,
        )

    def api(self, method: str, path: str, body: Any = None) -> Any:
        if self._token is None:
            password = (self.root / "stack" / "airflow-ui-password").read_text().strip()
            req = urllib.request.Request(
                f"{self.url}/auth/token",
                data=json.dumps({"username": "admin", "password": password}).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
                self._token = json.load(resp)["access_token"]
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
            return json.load(resp)

    def wait_for(self, what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                if last := check():
                    return last
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                last = err
            time.sleep(interval)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {last!r}")

    def repair(self, conf: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Trigger the backfill once the DAG is parsed; return its run, task instances and wall time."""
        self.wait_for("the backfill DAG to be parsed", lambda: self.api("GET", f"/dags/{DAG_ID}"), 180)
        self.api("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        started = time.monotonic()
        run = self.api("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
        run_path = f"/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run['dag_run_id'], safe='')}"
        run = self.wait_for(
            "the run to end",
            lambda: (r := self.api("GET", run_path))["state"] in ("success", "failed") and r,
            timeout,
            interval=0.5,
        )
        wall = time.monotonic() - started
        tis = self.api("GET", f"{run_path}/taskInstances?limit=200")["task_instances"]
        return {"run": run, "wall": wall, "tis": tis}


def _when(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def task_figures(tis: list[dict[str, Any]]) -> dict[str, Any]:
    """Per task: state(s), count, summed run time; for label_day also the phase wall time (first start to
    last end) and per-day figures."""
    out: dict[str, Any] = {}
    for ti in tis:
        f = out.setdefault(
            ti["task_id"], {"n": 0, "attempts": 0, "states": {}, "durations": [], "starts": [], "ends": []}
        )
        f["n"] += 1
        f["attempts"] += int(ti.get("try_number") or 1)
        f["states"][ti["state"]] = f["states"].get(ti["state"], 0) + 1
        if ti.get("duration") is not None:
            f["durations"].append(float(ti["duration"]))
        if start := _when(ti.get("start_date")):
            f["starts"].append(start)
        if end := _when(ti.get("end_date")):
            f["ends"].append(end)
    for f in out.values():
        durations = sorted(f.pop("durations"))
        starts, ends = f.pop("starts"), f.pop("ends")
        f["wall"] = round((max(ends) - min(starts)).total_seconds(), 1) if starts and ends else None
        f["median_s"] = round(durations[len(durations) // 2], 2) if durations else None
        f["max_s"] = round(durations[-1], 2) if durations else None
    return out


def report_of(airflow: Airflow, run_id: str) -> dict[str, Any] | None:
    for path in (airflow.root / "reports" / DAG_ID).glob("*.json"):
        report = json.loads(path.read_text())
        if report.get("run_id") == run_id:
            return report
    return None


LOCK_LINE = re.compile(
    r"chdb lock: (\d+) call\(s\), (\d+) engine open\(s\); waited ([\d.]+) s for the lock, "
    r"opened the engine in ([\d.]+) s"
)


def lock_costs(airflow_home: Path) -> dict[str, Any]:
    """The label_day tasks' own account of the chdb lock (the local runner logs it): calls, opens, seconds
    waited and spent opening the engine, summed over the days (their last attempt each)."""
    totals = {"days": 0, "calls": 0, "opens": 0, "wait_s": 0.0, "open_s": 0.0, "max_day_wait_s": 0.0}
    for log in airflow_home.glob(f"logs/dag_id={DAG_ID}/*/task_id=label_day/*/attempt=*.log"):
        found = LOCK_LINE.findall(log.read_text(errors="replace"))
        if not found:
            continue
        calls, opens, waited, opening = found[-1]
        totals["days"] += 1
        totals["calls"] += int(calls)
        totals["opens"] += int(opens)
        totals["wait_s"] += float(waited)
        totals["open_s"] += float(opening)
        totals["max_day_wait_s"] = max(totals["max_day_wait_s"], float(waited))
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in totals.items()}


def phase(name: str, keep: bool, pod_startup_seconds: float, parallel_days: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"label-backfill-bench-{name}-"))
    # as many slots as the run's days at once (scripts/airflow.sh: a spare slot churns through the day gate)
    extra = {"LABEL_BACKFILL_RETRY_DELAY_SECONDS": "5", "AIRFLOW__CORE__PARALLELISM": str(parallel_days)}
    fake = None
    if name == "kubernetes":
        fake = subprocess.Popen(
            [PY, "-m", "tests.fakes.kube_api", "--pod-startup-seconds", str(pod_startup_seconds)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        info = json.loads(fake.stdout.readline())
        extra.update(
            {
                "LABEL_BACKFILL_JOB_RUNNER": "kubernetes",
                "AIRFLOW_CONN_KUBERNETES_DEFAULT": info["airflow_connection"],
                "LABEL_BACKFILL_K8S_POLL_SECONDS": os.environ.get("LABEL_BACKFILL_K8S_POLL_SECONDS", "10"),
            }
        )
    airflow = Airflow(root, extra)
    result: dict[str, Any] = {"phase": name, "load_before": _loadavg(), "max_parallel_days": parallel_days}
    try:
        t0 = time.monotonic()
        airflow.run([PY, "-m", "label_backfill.dev.simulate", "--scale", "small", "--seed", "7"], "seeding")
        result["seed_s"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        airflow.start()
        result["airflow_start_s"] = round(time.monotonic() - t0, 1)
        print(
            f"  [{name}] seeded in {result['seed_s']} s, Airflow up in {result['airflow_start_s']} s",
            flush=True,
        )
        conf = {
            "customer": CUSTOMER,
            "start_date": FIRST,
            "end_date": LAST,
            "max_days": 62,
            "max_parallel_days": parallel_days,
        }
        done = airflow.repair(conf, timeout=1800)
        figures = task_figures(done["tis"])
        day = figures.get("label_day", {})
        report = report_of(airflow, done["run"]["dag_run_id"]) or {}
        result.update(
            {
                "run_state": done["run"]["state"],
                "run_s": round(done["wall"], 1),
                "days": day.get("n"),
                "label_day_wall_s": day.get("wall"),
                "label_day_median_s": day.get("median_s"),
                "label_day_max_s": day.get("max_s"),
                "day_states": day.get("states"),
                "day_attempts": day.get("attempts"),
                "tasks": figures,
                "verdict": report.get("verdict"),
                "ch_rows_after": ((report.get("after") or {}).get("totals") or {}).get("ch_rows"),
                "load_after": _loadavg(),
            }
        )
        if fake is not None:
            result["pod_startup_s"] = pod_startup_seconds
            result["k8s_poll_s"] = float(extra["LABEL_BACKFILL_K8S_POLL_SECONDS"])
            result["data_path"] = "SIMULATED: the fake Jobs' pods start, wait, succeed and write nothing"
        if name == "local":
            result["chdb_lock"] = lock_costs(root / "airflow")
    finally:
        airflow.stop()
        if fake is not None:
            fake.terminate()
            _, err = fake.communicate(timeout=30)
            result["fake_api"] = err.strip().splitlines()[-1] if err.strip() else ""
        if keep:
            print(f"  [{name}] kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| phase | days | max_parallel_days | label_day phase s | run s (trigger to end) | per day (median) s | "
        "goal s | goal / measured | reference | reference / measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        measured = r["label_day_wall_s"] if r["phase"] == "kubernetes" else r["run_s"]
        ref_name, ref = (
            ("seeds' production 16.5 min", SEEDS_PRODUCTION_SECONDS)
            if r["phase"] == "kubernetes"
            else ("issue 14: one task at a time ~8 min", ISSUE_LOCAL_SECONDS)
        )
        goal = GOALS[r["phase"]]
        lines.append(
            f"| {r['phase']} | {r['days']} | {r['max_parallel_days']} | {r['label_day_wall_s']} | {r['run_s']} | "
            f"{r['label_day_median_s']} | {goal:.0f} | {goal / measured:.2f}x | {ref_name} ({ref:.0f} s) | "
            f"{ref / measured:.1f}x |"
        )
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in results:
        if r["phase"] == "local":
            ok = r["run_state"] == "success" and r["run_s"] < GOALS["local"]
            out.append(
                f"local: {r['days']} days repaired under the real scheduler in {r['run_s']} s (run {r['run_state']}, "
                f"verdict {r['verdict']}, {r['ch_rows_after']} rows after) - goal < 120 s: "
                f"{'MET' if ok else 'NOT MET'}; {r['day_attempts']} day attempts; load {r['load_before']} -> "
                f"{r['load_after']}"
            )
            if lock := r.get("chdb_lock"):
                out.append(
                    f"local: the chdb lock over {lock['days']} days: {lock['calls']} ClickHouse calls, "
                    f"{lock['opens']} engine opens taking {lock['open_s']} s, {lock['wait_s']} s waited "
                    f"(at most {lock['max_day_wait_s']} s in one day)"
                )
        else:
            ok = r["day_states"] == {"success": r["days"]} and r["label_day_wall_s"] < GOALS["kubernetes"]
            out.append(
                f"kubernetes: {r['days']} day Jobs (pods {r['pod_startup_s']:g} s to start, Job status polled every "
                f"{r['k8s_poll_s']:g} s) in "
                f"{r['label_day_wall_s']} s, whole run {r['run_s']} s, vs the seeds' production "
                f"{SEEDS_PRODUCTION_SECONDS / 60:.1f} min - goal < 180 s: {'MET' if ok else 'NOT MET'}. "
                f"DATA PATH SIMULATED (the fake Jobs write nothing; verify: {r['verdict']}, as it must "
                f"be). {r['day_attempts']} day attempts. Fake API: {r.get('fake_api')}; load {r['load_before']} -> "
                f"{r['load_after']}"
            )
    return out


def run(
    phases: tuple[str, ...] = ("local", "kubernetes"),
    *,
    pod_startup_seconds: float = 15.0,
    parallel_days: int = 8,
    keep: bool = False,
) -> list[dict[str, Any]]:
    """Run the phases, print the table and the verdicts; return one result dict per phase (bench.py's entry).

    :param phases: ``local`` and/or ``kubernetes``.
    :param pod_startup_seconds: the fake pods' Pending time.
    :param parallel_days: the runs' ``max_parallel_days``.
    :param keep: keep each phase's folder (Airflow home with the task logs, the stack).
    """
    os.umask(0o077)
    results = []
    for name in phases:
        print(f"bench scheduler: {name}, {CUSTOMER} {FIRST}..{LAST} (load {_loadavg()})", flush=True)
        results.append(phase(name, keep, pod_startup_seconds, parallel_days))
    print("\n" + table(results))
    for line in verdicts(results):
        print(line)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", action="append", choices=["local", "kubernetes"])
    parser.add_argument("--pod-startup-seconds", type=float, default=15.0)
    parser.add_argument("--max-parallel-days", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the phases' folders (logs)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    results = run(
        tuple(args.phase or ("local", "kubernetes")),
        pod_startup_seconds=args.pod_startup_seconds,
        parallel_days=args.max_parallel_days,
        keep=args.keep,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
