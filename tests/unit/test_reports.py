"""Report files through Airflow's ObjectStoragePath: safe names, local folders and an object store."""

from __future__ import annotations

import json
import re

import pytest
from label_backfill.reports import check_report_dir, read_report, report_url, safe_name, write_report
from label_backfill.settings import load

pytestmark = pytest.mark.unit

DAG = "conversation_labels_backfill"
SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def test_a_generated_run_id_only_loses_its_colons_and_plus():
    assert safe_name("manual__2026-11-28T04:51:12.084764+00:00") == "manual__2026-11-28T04-51-12.084764-00-00"
    assert safe_name("scheduled__2026-02-15T04:00:00+00:00") == "scheduled__2026-02-15T04-00-00-00-00"
    assert safe_name("my_run-1.a") == "my_run-1.a"  # already safe: kept


def test_names_are_safe_deterministic_and_never_shared():
    tricky = [
        "manual__2026-11-28T04:51:12.084764+00:00",
        "manual__2026-11-28T04-51-12.084764-00-00",  # a custom run id spelled like the line above's name
        "a:b",
        "a+b",
        "a-b",
        "a~b",
        "drift_repair__alaska-air__2026-02-01__2026-02-03__scheduled__2026-02-15T04:00:00+00:00",
        "x" * 250,
        "x" * 251,
        "a-b__" + safe_name("a:b").rsplit("__", 1)[1],  # a custom run id spelled like a hashed name
        "../../etc/passwd",
    ]
    names = [safe_name(r) for r in tricky]
    assert len(set(names)) == len(tricky), names
    assert all(SAFE.fullmatch(n) and len(n) + len(".json") <= 255 for n in names)
    assert names == [safe_name(r) for r in tricky]
    assert "/" not in safe_name("../../etc/passwd")


def test_a_plain_folder_gets_both_files_and_the_url(tmp_path):
    run_id = "manual__2026-11-28T04:51:12.084764+00:00"
    url = write_report(str(tmp_path / "reports"), DAG, run_id, {"ok": True, "verdict": "EXACT"}, "# md")
    expected = tmp_path / "reports" / DAG / "manual__2026-11-28T04-51-12.084764-00-00.json"
    assert url == f"file://{expected}"
    assert json.loads(expected.read_text()) == {"ok": True, "verdict": "EXACT"}
    assert expected.with_suffix(".md").read_text() == "# md\n"
    assert sorted(p.name for p in expected.parent.iterdir()) == [
        expected.name,
        expected.with_suffix(".md").name,
    ]
    # the same run again replaces both files, leaving no temporary file behind
    write_report(f"file://{tmp_path}/reports", DAG, run_id, {"ok": False}, "# again")
    assert read_report(f"file://{tmp_path}/reports", DAG, run_id) == {"ok": False}
    assert len(list(expected.parent.iterdir())) == 2


def test_an_object_store_url_is_written_through_object_storage_path():
    """fsspec's in-memory filesystem stands in for s3:// or gs:// (same ObjectStoragePath code path, no
    network): one write per file, no folders, no rename."""
    from airflow.sdk import ObjectStoragePath

    base = "memory://label-backfill-test/reports/prod"
    url = write_report(base, DAG, "manual__2026-02-15T04:00:00+00:00", {"ok": True}, "# md")
    assert url == f"{base}/{DAG}/manual__2026-02-15T04-00-00-00-00.json"
    assert json.loads(ObjectStoragePath(url).read_text()) == {"ok": True}
    assert ObjectStoragePath(url.removesuffix(".json") + ".md").read_text() == "# md\n"
    assert read_report(base, DAG, "manual__2026-02-15T04:00:00+00:00") == {"ok": True}
    assert read_report(base, DAG, "manual__no-such-run") is None
    names = sorted(p.name for p in ObjectStoragePath(f"{base}/{DAG}").iterdir())
    assert names == ["manual__2026-02-15T04-00-00-00-00.json", "manual__2026-02-15T04-00-00-00-00.md"]


def test_report_dir_setting_accepts_paths_and_urls_and_refuses_broken_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report_url("./reports", DAG, "r1") == f"file://{tmp_path}/reports/{DAG}/r1.json"
    assert report_url("s3://bucket/prefix/", DAG, "r1") == f"s3://bucket/prefix/{DAG}/r1.json"
    for good in ("./reports", "/abs/reports", "file:///abs/reports", "s3://bucket/prefix", "gs://bucket"):
        assert check_report_dir(good) == good
    for bad, why in (
        ("file://relative/reports", "absolute path"),
        ("s3://", "no bucket"),
        ("S3 ://bucket", "scheme"),
    ):
        with pytest.raises(ValueError, match=why):
            check_report_dir(bad)
    settings = load({"LABEL_BACKFILL_REPORT_DIR": "s3://b/p", "LABEL_BACKFILL_REPORT_CONN_ID": "aws_reports"})
    assert (settings.report_dir, settings.report_conn_id) == ("s3://b/p", "aws_reports")
    assert load({}).report_conn_id is None and load({}).report_dir == "./reports"
    with pytest.raises(ValueError, match="LABEL_BACKFILL_REPORT_DIR"):
        load({"LABEL_BACKFILL_REPORT_DIR": "file://reports"})
