"""Report files: ``<REPORT_DIR>/<dag_id>/<run_id>.json`` and its markdown twin."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any


def report_paths(report_dir: str, dag_id: str, run_id: str) -> tuple[Path, Path]:
    safe = re.sub(r"[^A-Za-z0-9_.:+-]", "_", run_id)
    base = Path(report_dir) / dag_id
    return base / f"{safe}.json", base / f"{safe}.md"


def write_report(report_dir: str, dag_id: str, run_id: str, document: dict[str, Any], markdown: str) -> Path:
    """Write both files atomically enough for a reader (write, then rename); return the JSON path."""
    json_path, md_path = report_paths(report_dir, dag_id, run_id)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in ((json_path, json.dumps(document, indent=2, default=str)), (md_path, markdown)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text + "\n")
        tmp.replace(path)
    return json_path
