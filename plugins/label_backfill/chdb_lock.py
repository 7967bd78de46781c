"""The embedded stack's ClickHouse (chdb) shared by many processes: one at a time, for one call at a time.

chdb runs the ClickHouse engine inside the process and allows ONE process per data directory: a second
process that opens it while the first has it open gets ``Error initializing EmbeddedServer`` (nothing is
corrupted; it just cannot open). A process may close it and open it again, and another process may open it
in between. So on the embedded stack every ClickHouse call goes through :class:`LockedChdbClient`: take a
cross-process lock (``flock`` on ``<data dir>.lock``), open the engine, make the call, close the engine,
release. A task holds the directory only for its ClickHouse calls, not for its whole run, so days run in
parallel. The wait for the lock is bounded (``LABEL_BACKFILL_CHDB_LOCK_TIMEOUT_SECONDS``); past it the call
fails naming the holder (pid and task), which the holder writes into the lock file.

What it costs: opening the engine again for every call (~0.04 s; ~0.3 s the first time in a process),
measured in README "Days in parallel on the embedded stack". Production (a ClickHouse server over HTTP) never
gets here: ``hooks.clickhouse_client`` wraps only a ``chdb://`` connection.

A mutation (``ALTER ... DELETE``) runs in the engine's background threads, i.e. only while some process has
the engine open: a waiter that polls ``system.mutations`` holds the engine through a short batch of polls
(:meth:`LockedChdbClient.held`, used through :func:`held`), not one open per poll, so the mutation advances.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_TIMEOUT_VAR = "LABEL_BACKFILL_CHDB_LOCK_TIMEOUT_SECONDS"
DEFAULT_LOCK_TIMEOUT_SECONDS = 300.0
# While the engine is held for a batch of polls (``held``), the mutation runs; the batch ends after this long
# so the other processes get their turn.
POLL_BATCH_SECONDS = 2.0
_POLL_FIRST, _POLL_MAX = 0.002, 0.05  # the lock is polled (flock has no timeout): short sleeps, growing


# What the lock cost this process, over every client (a task logs it: README "Days in parallel ...").
PROCESS_TOTALS = {"calls": 0, "opens": 0, "wait_seconds": 0.0, "open_seconds": 0.0}


def process_totals() -> str:
    """This process's ClickHouse calls through the lock, the seconds waited for it and spent opening."""
    t = PROCESS_TOTALS
    return (
        f"{t['calls']} call(s), {t['opens']} engine open(s); waited {t['wait_seconds']:.2f} s for the lock, "
        f"opened the engine in {t['open_seconds']:.2f} s"
    )


class ChdbLockTimeout(TimeoutError):
    """The chdb directory stayed held by another process longer than the bounded wait."""


def chdb_path(client_kwargs: dict[str, Any]) -> Path | None:
    """The data directory of a chdb connection (``dsn='chdb:///abs/dir'`` or ``interface='chdb', path=...``),
    or None for anything else (a ClickHouse server; chdb in memory)."""
    dsn = str(client_kwargs.get("dsn") or "")
    if dsn.startswith("chdb://"):
        location = dsn.removeprefix("chdb://").split("?", 1)[0]
        return Path(location) if location.startswith("/") else None  # chdb://memory is no directory
    if client_kwargs.get("interface") == "chdb" and client_kwargs.get("path"):
        path = str(client_kwargs["path"])
        return None if path == ":memory:" else Path(path)
    return None


def lock_timeout(environ: dict[str, str] | None = None) -> float:
    env = os.environ if environ is None else environ
    value = float(env.get(LOCK_TIMEOUT_VAR, "") or DEFAULT_LOCK_TIMEOUT_SECONDS)
    if value <= 0:
        raise ValueError(f"{LOCK_TIMEOUT_VAR} must be positive, not {value}")
    return value


def _who() -> str:
    """This process as the lock file names it: pid, and the Airflow task when it runs in one."""
    ctx = [os.environ.get(f"AIRFLOW_CTX_{key}") for key in ("DAG_ID", "TASK_ID", "DAG_RUN_ID", "TRY_NUMBER")]
    task = " task {}.{} run {} try {}".format(*ctx) if ctx[0] and ctx[1] else ""
    return f"pid {os.getpid()}{task}"


class _PathState:
    """One process's hold of one directory, shared by every ``DirectoryLock`` of it in the process."""

    def __init__(self) -> None:
        self.thread_lock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


class DirectoryLock:
    """The cross-process lock of one chdb data directory: ``flock`` on ``<dir>.lock``, re-entrant in a thread.

    Threads of one process take turns through an in-process lock first (the triggerer runs triggers in
    threads); processes through ``flock``, released by the kernel when a holder dies (kill -9 included).

    :param data_dir: the chdb data directory.
    :param timeout: seconds to wait for the lock before :class:`ChdbLockTimeout`.
    """

    _states: dict[Path, _PathState] = {}
    _registry_lock = threading.Lock()

    def __init__(self, data_dir: Path, timeout: float | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.path = self.data_dir.with_name(self.data_dir.name + ".lock")
        self.timeout = lock_timeout() if timeout is None else float(timeout)
        with self._registry_lock:
            self._state = self._states.setdefault(self.data_dir, _PathState())

    def holder(self) -> str:
        """What the current (or last) holder wrote into the lock file."""
        try:
            return self.path.read_text().strip() or "unknown (nothing written yet)"
        except OSError as err:
            return f"unknown ({err})"

    @contextlib.contextmanager
    def held(self, what: str = "") -> Iterator[float]:
        """Hold the directory for the ``with`` block; yields the seconds waited for it (0 when re-entered).

        :param what: what the holder does, written into the lock file for a waiter's error message.
        """
        waited = self._acquire(what)
        try:
            yield waited
        finally:
            self._release()

    def _acquire(self, what: str) -> float:
        if self.data_dir in _PINNED:  # this process holds the directory until it exits (pinned_client)
            return 0.0
        started, state = time.monotonic(), self._state
        if not state.thread_lock.acquire(timeout=self.timeout):
            raise ChdbLockTimeout(
                f"the chdb directory {self.data_dir} stayed held by another thread of pid {os.getpid()} for "
                f"{self.timeout:g} s ({LOCK_TIMEOUT_VAR}); holder: {self.holder()}"
            )
        state.depth += 1
        if state.depth > 1:
            return 0.0
        try:
            state.fd = self._flock(started)
            os.ftruncate(state.fd, 0)
            since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            os.pwrite(state.fd, f"{_who()} since {since}{': ' + what if what else ''}\n".encode(), 0)
        except BaseException:
            self._release()
            raise
        return time.monotonic() - started

    def _flock(self, started: float) -> int:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        sleep = _POLL_FIRST
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                waited = time.monotonic() - started
                if waited >= self.timeout:
                    os.close(fd)
                    raise ChdbLockTimeout(
                        f"the chdb directory {self.data_dir} is held by another process: waited "
                        f"{waited:.1f} s ({LOCK_TIMEOUT_VAR}={self.timeout:g}); holder: {self.holder()}"
                    ) from None
                time.sleep(min(sleep, self.timeout - waited))
                sleep = min(sleep * 2, _POLL_MAX)

    def _release(self) -> None:
        if self.data_dir in _PINNED:
            return
        state = self._state
        state.depth -= 1
        try:
            if state.depth == 0 and state.fd is not None:
                fd, state.fd = state.fd, None
                os.close(fd)  # closing the descriptor releases the flock
        finally:
            state.thread_lock.release()


# Directories this process holds until it exits (pinned_client): data dir -> (lock fd, the shared client)
_PINNED: dict[Path, tuple[int, Any]] = {}


def pinned_client(open_client: Callable[[], Any], data_dir: Path, timeout: float | None = None) -> Any:
    """For a process that runs a whole DAG run by itself (``airflow dags test``: its tasks one after another
    in this process): take the directory once, hold it until the process exits (the kernel releases the
    ``flock``), and share one open client. Per-call opens (~10-50 ms each, several per day) would otherwise
    be most of a day's fixed cost, for a lock nobody else may take meanwhile. Another process waits for it
    (bounded, the message naming this one) exactly as for a per-call holder; a ``LockedChdbClient`` of this
    process passes through.
    """
    data_dir = Path(data_dir).resolve()
    if data_dir not in _PINNED:
        lock = DirectoryLock(data_dir, timeout)
        fd = lock._flock(time.monotonic())
        since = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(
            fd, f"{_who()} since {since}: a whole DAG run in this process (held until it exits)\n".encode(), 0
        )
        _PINNED[data_dir] = (fd, _Shared(open_client()))
        log.info("chdb directory %s held by this process until it exits (one DAG run in-process)", data_dir)
    return _PINNED[data_dir][1]


class _Shared:
    """The pinned client as its callers see it: everything but ``close`` (it is shared until exit)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def close(self) -> None:
        """Shared until the process exits."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


_engine_warm = False


def _warm_up_engine() -> None:
    """Start chdb once in this process on no directory (in memory), outside the lock: the engine's one-time
    start-up (~0.2-0.4 s, more on a loaded machine) is then not spent holding the directory. Skipped when
    this process has chdb open on a directory already (chdb would refuse a second location)."""
    global _engine_warm
    if _engine_warm:
        return
    _engine_warm = True
    try:
        import clickhouse_connect

        clickhouse_connect.get_client(interface="chdb").close()
    except Exception as err:  # only a head start: the real open under the lock decides
        log.debug("chdb warm-up skipped: %s", err)


class LockedChdbClient:
    """A clickhouse-connect client for a chdb directory that holds the directory only during each call.

    Every method call (``query``, ``command``, ``insert_arrow`` ...) takes the lock, opens a client with
    ``open_client``, calls it, closes it and releases the lock; inside :meth:`held` the calls share one
    open client. Streaming methods (``*_stream``) are refused: their result is read after the call returns.

    :param open_client: opens a real clickhouse-connect client on the directory (the hook's ``get_client``).
    :param data_dir: the chdb data directory.
    :param timeout: the bounded wait for the lock (default ``LABEL_BACKFILL_CHDB_LOCK_TIMEOUT_SECONDS``).
    """

    def __init__(self, open_client: Callable[[], Any], data_dir: Path, timeout: float | None = None) -> None:
        self._open_client = open_client
        self.lock = DirectoryLock(data_dir, timeout)
        self._client: Any = None
        self.stats = {"calls": 0, "opens": 0, "wait_seconds": 0.0, "open_seconds": 0.0}

    @contextlib.contextmanager
    def held(self, what: str = "") -> Iterator[Any]:
        """Hold the directory with one open client for the ``with`` block (a short batch of calls)."""
        _warm_up_engine()
        with self.lock.held(what) as waited:
            if self._client is not None:  # re-entered by the thread that holds it
                yield self._client
                return
            started = time.monotonic()
            self._client = self._open_client()
            for stats in (self.stats, PROCESS_TOTALS):
                stats["opens"] += 1
                stats["wait_seconds"] += waited
                stats["open_seconds"] += time.monotonic() - started
            try:
                yield self._client
            finally:
                client, self._client = self._client, None
                client.close()

    def close(self) -> None:
        """Nothing stays open between calls."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name.endswith("_stream"):
            raise AttributeError(f"{name}: a stream is read after the call, when the chdb lock is released")

        def call(*args: Any, **kwargs: Any) -> Any:
            with self.held(name) as client:
                self.stats["calls"] += 1
                PROCESS_TOTALS["calls"] += 1
                return getattr(client, name)(*args, **kwargs)

        call.__name__ = name
        return call


def held(client: Any, what: str = "") -> contextlib.AbstractContextManager[Any]:
    """Hold a chdb client's directory for a short batch of calls (see the module's doc); on any other client
    (a ClickHouse server) a no-op."""
    if isinstance(client, LockedChdbClient):
        return client.held(what)
    return contextlib.nullcontext(client)


def polling_held(client: Any, what: str, seconds: float = POLL_BATCH_SECONDS) -> Iterator[Any]:
    """Batches of a poll loop: yields once per poll; on chdb the directory stays held for ``seconds`` of
    polls, then is let go for the other processes and taken again. ``break`` out of it when done."""
    while True:
        with held(client, what):
            end = time.monotonic() + seconds
            while True:
                yield client
                if time.monotonic() >= end:
                    break
