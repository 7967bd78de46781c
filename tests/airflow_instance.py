"""A real Airflow of a test module's own (``scripts/airflow.sh --background``), shared by tests/ui and
tests/scheduler.

The instance runs in subprocesses on a free port, with its own LABEL_BACKFILL_LOCAL_DIR / AIRFLOW_HOME /
LABEL_BACKFILL_REPORT_DIR in a temporary folder: it never touches the user's ``.local`` nor the environment
tests/conftest.py sets for the other tests. Nothing here imports label_backfill or chdb (chdb allows one
process per data directory: the Airflow task processes must be the only ones opening it); whatever reads the
stack does so in a subprocess (:func:`run_on_stack`), before Airflow starts or while none of its tasks runs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_TIMEOUT = 90  # seconds: the same bound as the browser waits (a 2-core machine under load is slow)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AirflowUnderTest:
    url: str
    user: str
    password: str
    root: Path
    env: dict[str, str]

    @property
    def report_dir(self) -> Path:
        return Path(self.env["LABEL_BACKFILL_REPORT_DIR"])

    def token(self) -> str:
        body = json.dumps({"username": self.user, "password": self.password}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
            return json.load(resp)["access_token"]

    def api(self, token: str, path: str) -> dict:
        """GET /api/v2<path> (path segments already quoted); a slow answer on a loaded machine is waited for,
        a timed-out one asked again, within one generous bound."""
        req = urllib.request.Request(f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + API_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(req, timeout=API_TIMEOUT) as resp:
                    return json.load(resp)
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise


def clean_env(root: Path, port: int, overrides: Mapping[str, str]) -> dict[str, str]:
    """The instance's environment: ours without AIRFLOW_* / LABEL_BACKFILL_* (tests/conftest.py exported them
    for the in-process tests: none of it applies), its own folders and port, then ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LABEL_BACKFILL_"))}
    env.update(
        {
            "LABEL_BACKFILL_LOCAL_DIR": str(root / "stack"),
            "AIRFLOW_HOME": str(root / "airflow"),
            "LABEL_BACKFILL_REPORT_DIR": str(root / "reports"),
            "AIRFLOW_PORT": str(port),
            "AIRFLOW_READY_TIMEOUT": "150",
            "PYTHONUNBUFFERED": "1",
            **overrides,
        }
    )
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    """Run ``cmd`` in the repository; fail the test (naming ``what``) on a non-zero exit or a timeout."""
    try:
        proc = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"{what}: no answer after {timeout} s\n{err.stdout or ''}{err.stderr or ''}", pytrace=False
        )
    if proc.returncode:
        pytest.fail(f"{what} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout


def run_on_stack(airflow: AirflowUnderTest, code: str, *args: str, timeout: float = 180) -> object:
    """Run ``code`` in a subprocess with ``stack`` (the instance's ``label_backfill.dev.stack.Stack``) and
    ``args`` (strings) defined; return the JSON it prints last. Only while no task of the instance runs
    (chdb's lock), e.g. before Airflow starts."""
    prelude = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from label_backfill.dev.stack import Stack\n"
        "stack = Stack(Path(sys.argv[1]))\n"
        "args = sys.argv[2:]\n"
    )
    out = run(
        [sys.executable, "-c", prelude + code, airflow.env["LABEL_BACKFILL_LOCAL_DIR"], *args],
        airflow.env,
        timeout,
        "a read of the instance's stack",
    )
    return json.loads(out.strip().splitlines()[-1])


# Every row of <database>.conversation_with_labels (labeled_at included), as a count and a SHA-256
_TABLE_DIGEST = (
    "import hashlib\n"
    "rows = stack.clickhouse_client().query(\n"
    "    f'SELECT * FROM {args[0]}.conversation_with_labels ORDER BY ALL').result_rows\n"
    "print(json.dumps({'rows': len(rows), 'sha256': hashlib.sha256(repr(rows).encode()).hexdigest()}))\n"
)


def table_digest(airflow: AirflowUnderTest, database: str, timeout: float = 180) -> dict:
    """Every row of ``<database>.conversation_with_labels`` (labeled_at included) as a count and a SHA-256,
    read through :func:`run_on_stack` (the chdb lock the tasks take per call): equal digests, unchanged table."""
    return run_on_stack(airflow, _TABLE_DIGEST, database, timeout=timeout)


def skip_unless_selected(config: pytest.Config, items: list[pytest.Item], marker: str, how: str) -> None:
    """A tier that starts Airflow runs only when its marker is selected (``-m <marker>``); ``how`` says how."""
    if re.search(rf"(?<!not )\b{marker}\b", config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason=how)
    for item in items:
        if item.get_closest_marker(marker):
            item.add_marker(skip)


def kill_leftovers(pids_file: Path) -> None:
    """Kill what ``scripts/airflow.sh`` recorded in its pids file (the supervisor, the components' groups)."""
    if not pids_file.exists():
        return
    for line in pids_file.read_text().splitlines():
        try:
            name, pid = line.split()
            if name == "supervisor":
                os.kill(int(pid), signal.SIGKILL)
            else:
                os.killpg(int(pid), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


@contextmanager
def airflow_instance(
    tag: str,
    env_overrides: Mapping[str, str],
    prepare: Callable[[AirflowUnderTest], None],
    logs: Path,
) -> Iterator[AirflowUnderTest]:
    """``prepare`` (seed the stack: it runs BEFORE Airflow starts, chdb being free), start Airflow (4
    components) on a free port; always tear everything down, keeping the components' and the tasks' logs in
    ``logs``.

    :param tag: the prefix of the temporary folder and of the progress lines (``[ui]``).
    """
    root = Path(tempfile.mkdtemp(prefix=f"label-backfill-{tag}-"))
    port = free_port()
    env = clean_env(root, port, env_overrides)
    # the password: scripts/airflow.sh writes a random one to this 0600 file on the first start
    airflow = AirflowUnderTest(f"http://127.0.0.1:{port}", "admin", "", root, env)
    try:
        t0 = time.monotonic()
        prepare(airflow)
        print(f"\n[{tag}] stack prepared in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        run(["bash", "scripts/airflow.sh", "--background"], env, 200, "scripts/airflow.sh --background")
        airflow.password = (root / "stack" / "airflow-ui-password").read_text().strip()
        print(f"[{tag}] Airflow healthy at {airflow.url} in {time.monotonic() - t0:.1f} s (home {root})")
        yield airflow
    finally:
        pids = root / "stack" / "airflow.pids"
        try:
            subprocess.run(
                ["bash", "scripts/airflow.sh", "stop"], cwd=REPO, env=env, timeout=90, capture_output=True
            )
        except subprocess.TimeoutExpired:
            pass
        kill_leftovers(pids)
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True, exist_ok=True)
        for log in [*(root / "airflow" / "run").glob("*.log"), root / "stack" / "airflow.out"]:
            if log.exists():
                shutil.copy(log, logs / log.name)
        if (root / "airflow" / "logs").is_dir():  # the task logs: what a failed step hides
            shutil.copytree(root / "airflow" / "logs", logs / "tasks", dirs_exist_ok=True)
        try:
            subprocess.run(
                [sys.executable, "-m", "label_backfill.dev.stack", "clean"],  # as root: outside root
                cwd=REPO,
                env=env,
                timeout=60,
                capture_output=True,
            )
        except subprocess.TimeoutExpired:
            pass
        shutil.rmtree(root, ignore_errors=True)


def seed_small(airflow: AirflowUnderTest) -> None:
    """The three small-scale customers (``label_backfill.dev.simulate --scale small --seed 7``)."""
    out = run(
        [sys.executable, "-m", "label_backfill.dev.simulate", "--scale", "small", "--seed", "7"],
        airflow.env,
        180,
        "seeding (label_backfill.dev.simulate)",
    )
    print(f"\n[seed] {out.strip().splitlines()[0] if out else ''}")
