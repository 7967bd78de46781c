"""`make setup` on a bare Debian 12: `python3 -m venv` needs ensurepip, which Debian ships apart (python3-venv).

The Makefile's `venv` target runs here against a python3 without ensurepip (a wrapper that refuses to import
it) and fake `apt-get` / `id` commands: as root it installs python3-venv, otherwise it stops at once with the
exact command to run; and a venv left without pip (what a failed `python3 -m venv` leaves) is redone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.unit

APT_COMMAND = "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv"


def has_pip(venv: Path) -> bool:
    return (
        subprocess.run([venv / "bin" / "python", "-m", "pip", "--version"], capture_output=True).returncode
        == 0
    )


@pytest.fixture
def bare(tmp_path: Path):
    """A bin folder with python3 (ensurepip importable only once the fake apt-get 'installed' python3-venv),
    apt-get (records its calls), id (uid from $FAKE_UID); returns a runner of `make venv`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    installed = tmp_path / "python3-venv-installed"
    calls = tmp_path / "apt-calls"
    (bin_dir / "python3").write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -c ] && [ "$2" = "import ensurepip" ] && [ ! -e {installed} ]; then\n'
        '  echo "ModuleNotFoundError: No module named ensurepip" >&2; exit 1\nfi\n'
        f'exec {sys.base_prefix}/bin/python3 "$@"\n'
    )
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$*" >> {calls}\ncase "$*" in *install*python3-venv*) touch {installed};; esac\n'
    )
    (bin_dir / "id").write_text('#!/bin/sh\necho "${FAKE_UID:-0}"\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)

    def make(uid: int, venv: Path) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_UID": str(uid)}
        env.pop("MAKEFLAGS", None)
        return subprocess.run(
            ["make", "--no-print-directory", "-s", "-C", str(REPO), "venv", f"VENV={venv}"],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip

    return make, calls, installed


def test_not_root_without_ensurepip_stops_at_once_with_the_command(bare, tmp_path):
    make, calls, _ = bare
    result = make(1000, tmp_path / "venv")
    assert result.returncode != 0
    assert f"sudo sh -c '{APT_COMMAND}'" in result.stdout
    assert not calls.exists(), "no apt-get without root"
    assert not (tmp_path / "venv").exists()


def test_root_without_ensurepip_installs_python3_venv_then_creates_the_venv(bare, tmp_path):
    make, calls, _ = bare
    venv = tmp_path / "venv"
    result = make(0, venv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls.read_text().splitlines() == ["update", "install -y python3-venv"]
    assert has_pip(venv)


def test_a_venv_without_pip_is_redone(bare, tmp_path):
    make, calls, installed = bare
    installed.touch()  # ensurepip present
    venv = tmp_path / "venv"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", venv], check=True)
    result = make(1000, venv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not calls.exists()
    assert has_pip(venv)
    shutil.rmtree(venv)
