"""A demo-like run on the embedded stack leaves nothing readable by other users of the host.

``scripts/airflow-env.sh`` (sourced by ``make demo`` and ``make airflow``) sets umask 077 and Airflow's task
log modes; the simulator, ``airflow db migrate`` and ``airflow dags test`` (the DAG's task processes) inherit
it. Here the real commands run in a subprocess against a stack folder of their own whose path holds a quote
and a space (``airflow-env.sh`` evaluates the stack's ``export`` lines), then every file and folder they
wrote is checked: the embedded data, ``airflow.db`` and the run's report (and the task log modes Airflow
is told to use).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.integration

DEMO_LIKE = r"""
set -euo pipefail
source scripts/airflow-env.sh
echo "umask $(umask)"
.venv/bin/python -m label_backfill.dev.simulate --scale small --seed 7 > "$AIRFLOW_HOME/../simulate.log"
.venv/bin/airflow db migrate > "$AIRFLOW_HOME/../migrate.log" 2>&1
echo "task log modes $(.venv/bin/airflow config get-value logging file_task_handler_new_file_permissions) \
$(.venv/bin/airflow config get-value logging file_task_handler_new_folder_permissions)"
.venv/bin/airflow dags test conversation_labels_backfill -c "$CONF" > "$AIRFLOW_HOME/../dags-test.log" 2>&1
"""


def not_private(root: Path) -> dict[str, str]:
    """Every file or folder under root (root included, symlinks not followed) that group or others may use."""
    found = {}
    for path in [root, *root.rglob("*")]:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            continue
        if info.st_mode & 0o077:
            found[str(path.relative_to(root.parent))] = oct(stat.S_IMODE(info.st_mode))
    return found


def test_demo_like_run_writes_owner_only_files(tmp_path):
    local = tmp_path / "it's a stack"
    home = tmp_path / "airflow-home" / "airflow"
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "LABEL_BACKFILL_"))}
    env.update(
        LABEL_BACKFILL_LOCAL_DIR=str(local),
        AIRFLOW_HOME=str(home),
        LABEL_BACKFILL_REPORT_DIR=str(reports),
        LABEL_BACKFILL_RETRY_DELAY_SECONDS="0",
        CONF=json.dumps(
            {"customer": "alaska-air", "start_date": "2026-02-02", "end_date": "2026-02-03", "dry_run": True}
        ),
    )
    try:
        result = subprocess.run(
            ["bash", "-c", DEMO_LIKE], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
        )
        logs = {p.name: p.read_text()[-3000:] for p in home.parent.glob("*.log")}
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{logs}"
        problems = {**not_private(local), **not_private(home.parent), **not_private(reports)}
        assert problems == {}, "readable by group or others"
        assert "umask 0077" in result.stdout
        (report,) = (reports / "conversation_labels_backfill").glob("*.json")
        assert json.loads(report.read_text())["verdict"] == "DRY RUN"
        assert (home / "airflow.db").is_file()
        assert any((local / "chdb").iterdir()), "the simulator wrote no ClickHouse data"
        # airflow dags test logs to stdout; the components of make airflow write task log files, chmodded
        # by Airflow itself to these modes
        assert "task log modes 0o600 0o700" in result.stdout
    finally:
        subprocess.run(
            [str(REPO / ".venv" / "bin" / "python"), "-m", "label_backfill.dev.stack", "clean"],
            cwd=REPO,
            env=env,
            capture_output=True,
            timeout=120,
        )
