"""Pin every container image the repository pulls by digest: ``name:tag`` -> ``name:tag@sha256:...``.

    python3 scripts/pin-images.py            # resolve each unpinned image at its registry, rewrite the files
    python3 scripts/pin-images.py --check    # offline: list the images not pinned yet (exit 1 if any)
    python3 scripts/pin-images.py --refresh  # re-resolve pinned ones too (after changing a tag)

Images: every ``image:`` of docker-compose.yaml and every ``FROM`` and ``# syntax=`` of the Dockerfiles,
except the images this repository builds itself (compose services with ``build:``) and earlier stages.
A tag is resolved with the registry's HTTP API (Docker Registry v2 / OCI distribution: the manifest, or the
multi-platform index, of the tag; anonymous bearer token when the registry asks for one); the digest is the
sha256 of the manifest bytes received, checked against the registry's ``Docker-Content-Digest``. The tag
stays in the reference for readers; Docker and BuildKit pull by the digest.

Where no registry is reachable (the machines this project is built on have none), images stay unpinned
and are listed in docker/unpinned-images.txt, which this script keeps: an image leaves the list when it is
pinned. tests/unit/test_image_pins.py fails on any image that is neither pinned nor listed.
``PIN_IMAGES_REGISTRY=http://host:port`` sends every lookup to that registry instead (tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMPOSE = "docker-compose.yaml"
DOCKERFILES = ("docker/airflow/Dockerfile", "jobs/label_conversations/Dockerfile")
UNPINNED_LIST = "docker/unpinned-images.txt"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


@dataclass(frozen=True)
class ImageRef:
    file: str  # relative to the root
    line: int  # 1-based
    ref: str  # as written

    @property
    def pinned(self) -> bool:
        return bool(DIGEST.search(self.ref))

    @property
    def tagged(self) -> str:
        """The reference without its digest."""
        return DIGEST.sub("", self.ref)


def _built_images(compose_text: str) -> set[str]:
    """``image:`` names of compose services that have a ``build:`` (ours, never pulled)."""
    built, image, has_build = set(), None, False
    for line in [*compose_text.splitlines(), "  end:"]:
        if re.match(r"^  \S[^:]*:\s*$", line):  # a new service (or the end)
            if image and has_build:
                built.add(image)
            image, has_build = None, False
        elif m := re.match(r"^\s+image:\s*(\S+)\s*$", line):
            image = m.group(1)
        elif re.match(r"^\s+build:", line):
            has_build = True
    # the x-airflow-common anchor carries image + build for every service merging it
    if m := re.search(r"^x-airflow-common:.*?^\s+image:\s*(\S+).*?^\s+build:", compose_text, re.S | re.M):
        built.add(m.group(1))
    return built


def image_refs(root: Path = REPO) -> list[ImageRef]:
    refs = []
    compose_text = (root / COMPOSE).read_text()
    built = _built_images(compose_text)
    for number, line in enumerate(compose_text.splitlines(), 1):
        if (m := re.match(r"^\s+image:\s*(\S+)\s*$", line)) and m.group(1) not in built:
            refs.append(ImageRef(COMPOSE, number, m.group(1)))
    for dockerfile in DOCKERFILES:
        stages: set[str] = set()
        for number, line in enumerate((root / dockerfile).read_text().splitlines(), 1):
            if m := re.match(r"^#\s*syntax\s*=\s*(\S+)", line):
                refs.append(ImageRef(dockerfile, number, m.group(1)))
            elif m := re.match(r"^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
                if m.group(1) not in stages:
                    refs.append(ImageRef(dockerfile, number, m.group(1)))
                if m.group(2):
                    stages.add(m.group(2))
    return refs


def split_reference(ref: str) -> tuple[str, str, str]:
    """``(registry URL, repository, tag)`` of a tagged reference (Docker Hub's defaults applied)."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        registry, repository = f"https://{first}", rest
    else:
        registry, repository = "https://registry-1.docker.io", name if "/" in name else f"library/{name}"
    return os.environ.get("PIN_IMAGES_REGISTRY") or registry, repository, tag


def _bearer_token(challenge: str, timeout: float) -> str:
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urllib.parse.urlencode({k: v for k, v in params.items() if k in ("service", "scope")})
    with urllib.request.urlopen(f"{params['realm']}?{query}", timeout=timeout) as resp:
        body = json.load(resp)
    return body.get("token") or body["access_token"]


def resolve_digest(ref: str, timeout: float = 20) -> str:
    """The sha256 digest of the manifest (or index) the registry serves for a tagged reference."""
    registry, repository, tag = split_reference(ref)
    url = f"{registry}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": ACCEPT}
    for _ in range(2):
        try:
            with urllib.request.urlopen(
                urllib.request.Request(url, headers=headers), timeout=timeout
            ) as resp:
                body, announced = resp.read(), resp.headers.get("Docker-Content-Digest")
            break
        except urllib.error.HTTPError as err:
            challenge = err.headers.get("WWW-Authenticate", "")
            if err.code != 401 or not challenge.lower().startswith("bearer") or "Authorization" in headers:
                raise
            headers["Authorization"] = "Bearer " + _bearer_token(challenge, timeout)
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if announced and announced != digest:
        raise ValueError(f"{ref}: the registry announces {announced} but the manifest it sent is {digest}")
    return digest


def read_unpinned_list(root: Path) -> list[str]:
    path = root / UNPINNED_LIST
    if not path.exists():
        return []
    return [
        line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]


def write_unpinned_list(root: Path, refs: list[str]) -> None:
    header = (root / UNPINNED_LIST).read_text().splitlines() if (root / UNPINNED_LIST).exists() else []
    comments = [line for line in header if line.startswith("#")]
    (root / UNPINNED_LIST).write_text("\n".join([*comments, *sorted(set(refs))]) + "\n")


def pin(root: Path, refresh: bool = False) -> tuple[list[str], list[str]]:
    """Rewrite the files; returns (pinned, failed) messages."""
    pinned, failed = [], []
    resolved: dict[str, str] = {}
    edits: dict[str, list[tuple[int, str, str]]] = {}
    for image in image_refs(root):
        if image.pinned and not refresh:
            continue
        tagged = image.tagged
        if tagged not in resolved:
            try:
                resolved[tagged] = resolve_digest(tagged)
            except (OSError, ValueError, KeyError, urllib.error.URLError) as err:
                failed.append(f"{tagged}: {err}")
                resolved[tagged] = ""
        if resolved[tagged]:
            new = f"{tagged}@{resolved[tagged]}"
            edits.setdefault(image.file, []).append((image.line, image.ref, new))
            pinned.append(f"{image.file}:{image.line}: {new}")
    for file, changes in edits.items():
        lines = (root / file).read_text().splitlines(keepends=True)
        for number, old, new in changes:
            lines[number - 1] = lines[number - 1].replace(old, new, 1)
        (root / file).write_text("".join(lines))
    still = [image.tagged for image in image_refs(root) if not image.pinned]
    write_unpinned_list(root, still)
    return pinned, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/pin-images.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="list unpinned images, change nothing (offline)")
    parser.add_argument("--refresh", action="store_true", help="re-resolve images pinned already")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check:
        unpinned = [f"{i.file}:{i.line}: {i.ref}" for i in image_refs(args.root) if not i.pinned]
        print("\n".join(unpinned) if unpinned else "every image is pinned by digest")
        return 1 if unpinned else 0
    pinned, failed = pin(args.root, refresh=args.refresh)
    for line in pinned:
        print(f"pinned {line}")
    for line in failed:
        print(f"NOT pinned (registry unreachable or refused): {line}", file=sys.stderr)
    left = read_unpinned_list(args.root)
    print(f"{len(pinned)} reference(s) pinned; {len(left)} image(s) left in {UNPINNED_LIST}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
