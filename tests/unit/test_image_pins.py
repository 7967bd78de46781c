"""Images by digest: every image the repository pulls (compose ``image:``, Dockerfile ``FROM`` and ``# syntax=``)
is pinned by digest or listed in docker/unpinned-images.txt, which scripts/pin-images.py empties where a
registry is reachable (none is on these machines, so no digest is written here: none is made up).

The script itself runs here against a registry of the test's own (the Registry v2 API with its bearer-token
challenge): it pins every image with the sha256 of the manifest it received, refuses a registry whose
announced digest differs from the bytes it sent, and changes nothing when the registry is unreachable.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.unit.test_deploy_files import dockerfile_problems, image_reference_problem

pytestmark = pytest.mark.unit

SCRIPT = REPO / "scripts" / "pin-images.py"
_spec = importlib.util.spec_from_file_location("pin_images", SCRIPT)
pin_images = importlib.util.module_from_spec(_spec)
sys.modules["pin_images"] = pin_images  # dataclasses look their module up there
_spec.loader.exec_module(pin_images)


def test_every_image_is_pinned_by_digest_or_listed_to_be_pinned():
    refs = pin_images.image_refs()
    listed = pin_images.read_unpinned_list(REPO)
    assert {r.tagged for r in refs} >= {
        "postgres:18",
        "apache/airflow:3.3.2-python3.11",
        "docker/dockerfile:1",
    }
    assert "label-backfill-airflow:dev" not in {r.tagged for r in refs}, "built here, never pulled"
    unpinned = {r.tagged for r in refs if not r.pinned}
    assert sorted(unpinned - set(listed)) == [], "pin these (scripts/pin-images.py) or list them"
    assert sorted(set(listed) - unpinned) == [], "listed but pinned or gone: drop them from the list"
    for ref in refs:
        assert re.fullmatch(r"[^@\s]+:[^@\s:]+(@sha256:[0-9a-f]{64})?", ref.ref), ref


def manifest_for(repository: str, tag: str) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "for": f"{repository}:{tag}",
        }
    ).encode()


class FakeRegistry(BaseHTTPRequestHandler):
    lie = False

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):  # noqa: N802
        host = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}"
        if self.path.startswith("/token?"):
            scope = re.search(r"scope=([^&]+)", self.path).group(1)
            return self._send(200, json.dumps({"token": "t-" + scope}).encode())
        match = re.fullmatch(r"/v2/(.+)/manifests/([^/]+)", self.path)
        if not match:
            return self._send(404, b"{}")
        repository, tag = match.groups()
        scope = f"repository:{repository}:pull"
        expected = "Bearer t-" + scope.replace("/", "%2F").replace(":", "%3A")
        if self.headers.get("Authorization") != expected:
            challenge = f'Bearer realm="{host}/token",service="fake",scope="{scope}"'
            return self._send(401, b"{}", {"WWW-Authenticate": challenge})
        assert "application/vnd.oci.image.index.v1+json" in self.headers.get("Accept", "")
        body = manifest_for(repository, tag)
        digest = "sha256:" + hashlib.sha256(b"other" if self.lie else body).hexdigest()
        self._send(200, body, {"Docker-Content-Digest": digest})

    def _send(self, code, body, headers=None):
        self.send_response(code)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def registry():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    FakeRegistry.lie = False


@pytest.fixture
def root(tmp_path):
    for name in (pin_images.COMPOSE, *pin_images.DOCKERFILES, pin_images.UNPINNED_LIST):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def run(root: Path, registry_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PIN_IMAGES_REGISTRY": registry_url}
    return subprocess.run(
        ["python3", str(SCRIPT), "--root", str(root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def expected_digest(ref: str) -> str:
    name, tag = ref.rsplit(":", 1)
    repository = name if "/" in name else f"library/{name}"
    return "sha256:" + hashlib.sha256(manifest_for(repository, tag)).hexdigest()


def test_pins_every_image_where_a_registry_answers(root, registry):
    url = f"http://127.0.0.1:{registry.server_address[1]}"
    before = pin_images.image_refs(root)
    result = run(root, url)
    assert result.returncode == 0, result.stdout + result.stderr
    after = pin_images.image_refs(root)
    assert [(r.file, r.line) for r in after] == [(r.file, r.line) for r in before]
    for old, new in zip(before, after, strict=True):
        assert new.ref == f"{old.tagged}@{expected_digest(old.tagged)}"
        assert image_reference_problem(new.ref) is None
    assert pin_images.read_unpinned_list(root) == []
    assert run(root, url, "--check").returncode == 0
    # the pinned files still pass the deployment checks
    assert dockerfile_problems((root / "docker/airflow/Dockerfile").read_text(), REPO) == []
    job = root / "jobs/label_conversations/Dockerfile"
    assert dockerfile_problems(job.read_text(), REPO / "jobs/label_conversations") == []
    assert "# syntax=docker/dockerfile:1@sha256:" in job.read_text()
    # nothing else changed
    original = (REPO / pin_images.COMPOSE).read_text().splitlines()
    pinned = (root / pin_images.COMPOSE).read_text().splitlines()
    assert [(a, b) for a, b in zip(original, pinned, strict=True) if a != b and "image:" not in a] == []


def test_a_registry_whose_digest_does_not_match_its_bytes_is_refused(root, registry):
    FakeRegistry.lie = True
    compose = (root / pin_images.COMPOSE).read_text()
    result = run(root, f"http://127.0.0.1:{registry.server_address[1]}")
    assert result.returncode == 1 and "announces" in result.stderr
    assert (root / pin_images.COMPOSE).read_text() == compose


def test_unreachable_registry_changes_nothing(root):
    files = {n: (root / n).read_text() for n in (pin_images.COMPOSE, *pin_images.DOCKERFILES)}
    result = run(root, "http://127.0.0.1:9")
    assert result.returncode == 1 and "NOT pinned" in result.stderr
    assert {n: (root / n).read_text() for n in files} == files
    assert set(pin_images.read_unpinned_list(root)) == {r.tagged for r in pin_images.image_refs(root)}


def test_docker_hub_names():
    os.environ.pop("PIN_IMAGES_REGISTRY", None)
    assert pin_images.split_reference("postgres:18") == (
        "https://registry-1.docker.io",
        "library/postgres",
        "18",
    )
    assert pin_images.split_reference("rancher/k3s:v1.33.5-k3s1")[1:] == ("rancher/k3s", "v1.33.5-k3s1")
    assert pin_images.split_reference("ghcr.io/o/i:2") == ("https://ghcr.io", "o/i", "2")
    assert pin_images.split_reference("localhost:5000/i:2") == ("https://localhost:5000", "i", "2")
