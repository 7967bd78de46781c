"""``python -m label_backfill.dev.stack env`` prints ``export`` lines that ``scripts/airflow-env.sh`` evaluates
in bash: every value must come back unchanged whatever the stack folder's path holds (a quote, a space, a
``$(...)``), and nothing in a path may run as a command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from label_backfill.dev.stack import READER_ROLE, Stack, conninfo_for, export_lines

pytestmark = pytest.mark.unit

AWKWARD = 'it\'s a $(touch pwned) `touch pwned2` "stack"; echo'


def test_export_lines_round_trip_through_bash_eval(tmp_path):
    root = tmp_path / AWKWARD
    socket_dir = root / "pg" / "so'ck et"
    stack = Stack(root)
    env = stack.airflow_env(conninfo_for(socket_dir))
    script = (
        "set -euo pipefail\n"
        f'eval "$(cat {tmp_path / "lines"})"\n'
        f'exec {sys.executable} -c "import json, os, sys; print(json.dumps({{k: os.environ[k] for k in sys.argv[1:]}}))" '
        + " ".join(env)
    )
    (tmp_path / "lines").write_text(export_lines(env))
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == env
    postgres = json.loads(env["AIRFLOW_CONN_POSTGRES_CONVERSATIONS"])
    assert postgres["host"] == str(socket_dir)
    assert (
        postgres["login"] == READER_ROLE and postgres["schema"] == "conversations"
    )  # the DAGs read read-only
    clickhouse = json.loads(env["AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS"])
    assert clickhouse["extra"]["client_kwargs"]["dsn"] == f"chdb://{root / 'chdb'}"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_conninfo_keeps_a_socket_folder_with_spaces_and_quotes(tmp_path):
    from psycopg.conninfo import conninfo_to_dict

    socket_dir = tmp_path / "a b'c"
    assert conninfo_to_dict(conninfo_for(socket_dir)) == {
        "host": str(socket_dir),
        "user": "postgres",
        "dbname": "conversations",
    }
