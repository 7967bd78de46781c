"""`make test-ui` installs Debian's chromium at the Makefile's pinned version (scripts/ensure-chromium.sh).

The script runs against fake ``dpkg-query`` (the installed versions come from a file), ``apt-get`` (records
its calls, can fail) and ``id`` (the uid), as root and not.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.unit

PIN = "150.0.7871.100-1~deb12u1"
PACKAGES = ("chromium", "chromium-common", "chromium-driver", "chromium-sandbox")


def test_makefile_pins_chromium_and_test_ui_uses_the_pin():
    makefile = (REPO / "Makefile").read_text()
    version = re.search(r"^CHROMIUM_VERSION \?= (\S+)$", makefile, re.M)
    assert version and re.fullmatch(r"\d+(\.\d+)+-\d+~deb\d+u\d+", version.group(1))
    test_ui = makefile.split("\ntest-ui:", 1)[1].split("\n\n", 1)[0]
    assert '@bash scripts/ensure-chromium.sh "$(CHROMIUM_VERSION)"' in test_ui
    assert "apt-get install" not in test_ui and "chromium chromium-driver" not in test_ui


@pytest.fixture
def fake(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    installed, calls = tmp_path / "installed", tmp_path / "apt-calls"
    installed.write_text("")
    (bin_dir / "dpkg-query").write_text(
        "#!/bin/sh\n"
        'for a; do p="$a"; done\n'  # the package: the last argument
        f"v=$(awk -v p=\"$p\" '$1 == p {{print $2}}' {installed})\n"
        '[ -n "$v" ] || exit 1\nprintf "install ok installed %s" "$v"\n'
    )
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\n[ -z "$APT_FAILS" ] || case "$*" in *install*) exit 100;; esac\n'
    )
    (bin_dir / "id").write_text('#!/bin/sh\necho "${FAKE_UID:-0}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)

    def run(uid: int, versions: dict[str, str], **env: str) -> subprocess.CompletedProcess[str]:
        installed.write_text("".join(f"{p} {v}\n" for p, v in versions.items()))
        calls.unlink(missing_ok=True)
        return subprocess.run(
            ["bash", str(REPO / "scripts" / "ensure-chromium.sh"), PIN],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_UID": str(uid), **env},
        )

    return run, calls


def pinned_install() -> str:
    return "install -y -qq --allow-downgrades " + " ".join(f"{p}={PIN}" for p in PACKAGES)


def test_pinned_version_installed_nothing_to_do(fake):
    run, calls = fake
    result = run(0, dict.fromkeys(PACKAGES, PIN))
    assert result.returncode == 0 and "is installed" in result.stdout
    assert not calls.exists()


@pytest.mark.parametrize(
    "versions",
    [
        {},
        dict.fromkeys(PACKAGES, "156.0.8078.108-1~deb12u1"),
        {**dict.fromkeys(PACKAGES, PIN), "chromium-driver": "1"},
    ],
    ids=["absent", "newer", "one-package-differs"],
)
def test_root_installs_exactly_the_pinned_version(fake, versions):
    run, calls = fake
    result = run(0, versions)
    assert result.returncode == 0, result.stderr
    assert calls.read_text().splitlines() == ["update -qq", pinned_install()]


def test_root_stops_with_the_fix_when_debian_retired_the_version(fake):
    run, calls = fake
    result = run(0, {}, APT_FAILS="1")
    assert result.returncode == 1
    assert "apt-cache policy chromium" in result.stderr and "CHROMIUM_VERSION" in result.stderr


def test_not_root_missing_chromium_stops_with_the_pinned_command(fake):
    run, calls = fake
    result = run(1000, {})
    assert result.returncode == 1 and f"chromium={PIN}" in result.stderr and "sudo" in result.stderr
    assert not calls.exists()


def test_not_root_other_version_warns_and_goes_on(fake):
    run, calls = fake
    result = run(1000, dict.fromkeys(PACKAGES, "156.0.8078.108-1~deb12u1"))
    assert result.returncode == 0 and "warning" in result.stderr and PIN in result.stderr
    assert not calls.exists()
