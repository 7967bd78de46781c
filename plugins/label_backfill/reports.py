"""Report files: ``<REPORT_DIR>/<dag_id>/<run id made safe>.json`` and its markdown twin.

Written through Airflow's ``ObjectStoragePath``, so ``LABEL_BACKFILL_REPORT_DIR`` may be a local folder (a plain
path or ``file:///abs``) or an object store URL (``s3://bucket/prefix``, ``gs://bucket/prefix``, ...: the
provider's filesystem, with the connection ``LABEL_BACKFILL_REPORT_CONN_ID``). Nothing assumes a disk shared by
the workers: every file is addressed by its URL, which is what the tasks return, log and put in alerts.

Atomicity: on a local folder each file is written under a temporary name and renamed (a reader sees the old
file or the whole new one); an object store gets one PUT per file (an object appears whole or not at all; its
"rename" would be a copy). The markdown twin is written first, the JSON last: once the JSON exists, both do.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
# Run ids Airflow generates: <type>__<UTC ISO timestamp>, e.g. manual__2026-11-28T04:51:12.084764+00:00.
_GENERATED = re.compile(r"[a-z_]+__\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?\+00:00")
_GENERATED_SAFE = re.compile(r"[a-z_]+__\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d(?:\.\d{1,6})?-00-00")
_HASHED = re.compile(r".*__[0-9a-f]{10}")
MAX_NAME = 200  # + "__" + 10 hex + ".json" stays under the 255 bytes a file name may have


def safe_name(run_id: str) -> str:
    """A file name for ``run_id`` that every store accepts (letters, digits, ``_ . -``), one per run id.

    Airflow's generated run ids only lose their ``:`` and ``+``:
    ``manual__2026-11-28T04:51:12.084764+00:00`` -> ``manual__2026-11-28T04-51-12.084764-00-00`` (their fixed
    shape keeps this one-to-one). A safe run id is kept as it is. Any other run id (a custom one with ``:``,
    ``+``, ``~``, or longer than ``MAX_NAME``) has its unsafe characters replaced by ``-`` and a hash of the
    run id appended (``__`` + 10 hex digits). A safe run id that looks like one of those two results is hashed
    too, so no two run ids share a name.
    """
    if _GENERATED.fullmatch(run_id):
        return run_id.replace(":", "-").replace("+", "-")
    name = _UNSAFE.sub("-", run_id)
    if (
        name == run_id
        and len(name) <= MAX_NAME
        and not _GENERATED_SAFE.fullmatch(name)
        and not _HASHED.fullmatch(name)
    ):
        return name
    return f"{name[:MAX_NAME]}__{hashlib.sha256(run_id.encode()).hexdigest()[:10]}"


def base_url(report_dir: str) -> str:
    """``LABEL_BACKFILL_REPORT_DIR`` as a URL: a plain path (absolute, or relative to the current folder)
    becomes ``file:///abs/path``; a URL is kept (without a trailing ``/``)."""
    if "://" in report_dir:
        return report_dir.rstrip("/")
    return "file://" + str(Path(report_dir).expanduser().absolute())


def check_report_dir(value: str) -> str:
    """``value`` if it is a usable ``LABEL_BACKFILL_REPORT_DIR`` (no I/O), else ``ValueError`` saying why."""
    if "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    if not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme):
        raise ValueError(f"LABEL_BACKFILL_REPORT_DIR: {value!r} has no valid URL scheme")
    if scheme in ("file", "local") and not rest.startswith("/"):
        raise ValueError(
            f"LABEL_BACKFILL_REPORT_DIR: {value!r}: a file URL needs an absolute path, file:///abs/path"
        )
    if scheme not in ("file", "local") and not rest.strip("/"):
        raise ValueError(f"LABEL_BACKFILL_REPORT_DIR: {value!r} names no bucket or container")
    return value


def report_url(report_dir: str, dag_id: str, run_id: str, suffix: str = ".json") -> str:
    """The URL of a run's report (``suffix`` ``.md``: its markdown twin)."""
    return f"{base_url(report_dir)}/{dag_id}/{safe_name(run_id)}{suffix}"


def report_path(report_dir: str, dag_id: str, run_id: str, conn_id: str | None = None, suffix: str = ".json"):
    """The run's report as an ``ObjectStoragePath`` (on the store of ``conn_id``, if given)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(report_url(report_dir, dag_id, run_id, suffix), conn_id=conn_id or None)


def _local(path: Any) -> bool:
    return path.protocol in ("", "file", "local")


def write_report(
    report_dir: str,
    dag_id: str,
    run_id: str,
    document: dict[str, Any],
    markdown: str,
    conn_id: str | None = None,
) -> str:
    """Write the markdown twin, then the JSON (see the module's note on atomicity); return the JSON's URL."""
    json_path = report_path(report_dir, dag_id, run_id, conn_id)
    md_path = report_path(report_dir, dag_id, run_id, conn_id, suffix=".md")
    local = _local(json_path)
    if local:  # object stores have no folders (and s3fs's mkdir would create a missing bucket)
        json_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((md_path, markdown), (json_path, json.dumps(document, indent=2, default=str))):
        if local:
            tmp = path.parent / f".{path.name}.tmp"
            tmp.write_text(text + "\n")
            tmp.replace(path)
        else:
            path.write_text(text + "\n")
    return report_url(report_dir, dag_id, run_id)


def read_report(
    report_dir: str, dag_id: str, run_id: str, conn_id: str | None = None
) -> dict[str, Any] | None:
    """A run's JSON report, or None when there is none."""
    path = report_path(report_dir, dag_id, run_id, conn_id)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
