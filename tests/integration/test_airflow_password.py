"""`make airflow` keeps the UI password secret on a shared host.

The password lives in ``$LABEL_BACKFILL_LOCAL_DIR/airflow-ui-password`` (mode 0600, random on the first
start, or written from stdin by ``scripts/airflow.sh set-password``). While ``scripts/airflow.sh`` starts and
runs Airflow (four components, their workers), a watcher reads every process's command line
(``/proc/*/cmdline``, readable by every local user) and environment; the password must appear in neither, nor
in anything the script prints or any log it writes, and it must log in.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.airflow_instance import kill_leftovers
from tests.helpers import REPO

pytestmark = pytest.mark.integration

SCRIPT = ["bash", str(REPO / "scripts" / "airflow.sh")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LABEL_BACKFILL_"))}
    env.update(
        LABEL_BACKFILL_LOCAL_DIR=str(root / "stack"),
        AIRFLOW_HOME=str(root / "airflow"),
        LABEL_BACKFILL_REPORT_DIR=str(root / "reports"),
        AIRFLOW_READY_TIMEOUT="170",
        **extra,
    )
    return env


class ProcessWatcher(threading.Thread):
    """Reads every process's cmdline and environ over and over; records any that holds the secret (read
    from the password file as soon as it exists)."""

    def __init__(self, password_file: Path):
        super().__init__(daemon=True)
        self.password_file = password_file
        self.secret: bytes | None = None
        self.leaks: set[str] = set()
        self.sweeps = 0
        self.stop = threading.Event()

    def run(self) -> None:
        me = str(os.getpid())
        while not self.stop.is_set():
            if self.secret is None:
                try:
                    self.secret = self.password_file.read_text().strip().encode() or None
                except OSError:
                    pass
            if self.secret:
                for pid in os.listdir("/proc"):
                    if not pid.isdigit() or pid == me:
                        continue
                    for part in ("cmdline", "environ"):
                        try:
                            data = Path(f"/proc/{pid}/{part}").read_bytes()
                        except OSError:
                            continue
                        if self.secret in data:
                            self.leaks.add(f"pid {pid} {part}: {data[:200]!r}")
                self.sweeps += 1
            time.sleep(0.002)


def login(url: str, user: str, password: str) -> int:
    body = json.dumps({"username": user, "password": password}).encode()
    req = urllib.request.Request(f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.load(resp)["access_token"]
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_password_is_in_a_private_file_never_on_a_command_line_nor_printed(tmp_path):
    root = tmp_path
    port = free_port()
    env = clean_env(root, AIRFLOW_PORT=str(port))
    password_file = root / "stack" / "airflow-ui-password"
    watcher = ProcessWatcher(password_file)
    watcher.start()
    outputs = []
    try:
        started = subprocess.run(
            [*SCRIPT, "--background"], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
        )
        outputs.append(started.stdout + started.stderr)
        assert started.returncode == 0, started.stdout + started.stderr
        # the password file: ours, 0600, random
        info = password_file.stat()
        assert oct(info.st_mode & 0o777) == "0o600" and info.st_uid == os.getuid()
        password = password_file.read_text().strip()
        assert len(password) >= 20 and password != "admin"
        assert f"password in {password_file}" in started.stdout
        url = f"http://127.0.0.1:{port}"
        assert login(url, "admin", password) in (200, 201)
        assert login(url, "admin", "admin") == 401
        time.sleep(3)  # the components keep running: a few more sweeps of a settled instance
        status = subprocess.run([*SCRIPT, "status"], cwd=REPO, env=env, capture_output=True, text=True)
        outputs.append(status.stdout + status.stderr)
    finally:
        stopped = subprocess.run(
            [*SCRIPT, "stop"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
        )
        outputs.append(stopped.stdout + stopped.stderr)
        watcher.stop.set()
        watcher.join(10)
        kill_leftovers(root / "stack" / "airflow.pids")
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "label_backfill.dev.stack", "clean"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
        )
    assert watcher.secret and watcher.sweeps > 100, (watcher.secret, watcher.sweeps)
    assert watcher.leaks == set()
    written = [root / "stack" / "airflow.out", *(root / "airflow").rglob("*.log")]
    for text in [*outputs, *(p.read_text(errors="replace") for p in written if p.is_file())]:
        assert password not in text
    # only the two password files hold it
    holders = {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and password.encode() in p.read_bytes()
    }
    assert holders == {"stack/airflow-ui-password", "airflow/simple_auth_manager_passwords.json"}
    assert oct((root / "airflow" / "simple_auth_manager_passwords.json").stat().st_mode & 0o777) == "0o600"


def test_set_password_reads_stdin_and_writes_a_private_file(tmp_path):
    env = clean_env(tmp_path)
    secret = "correct horse battery staple 'quoted' $(not run)"
    result = subprocess.run(
        [*SCRIPT, "set-password"],
        cwd=REPO,
        env=env,
        input=secret + "\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    target = tmp_path / "stack" / "airflow-ui-password"
    assert target.read_text() == secret + "\n"
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert secret not in result.stdout + result.stderr


def test_refuses_a_password_in_the_environment_or_a_readable_file(tmp_path):
    env = clean_env(tmp_path, AIRFLOW_UI_PASSWORD="hunter2-in-env")
    result = subprocess.run(
        [*SCRIPT, "--background"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "AIRFLOW_UI_PASSWORD is not read" in result.stdout
    assert "hunter2-in-env" not in result.stdout + result.stderr
    env.pop("AIRFLOW_UI_PASSWORD")
    target = tmp_path / "stack" / "airflow-ui-password"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("shared-secret\n")
    target.chmod(0o644)
    result = subprocess.run(
        [*SCRIPT, "--background"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and "must be yours with mode 0600 (it is 644" in result.stdout
    assert "shared-secret" not in result.stdout + result.stderr
    assert not (tmp_path / "stack" / "airflow.pids").exists()
