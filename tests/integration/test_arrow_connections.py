"""The ADBC connections of the Arrow reads (``hooks.arrow_postgres``) are pooled within a process: a mapped day
or a comparison's round reuses one instead of paying the driver's ~40 ms connect, and a connection goes back
with no transaction open, or not at all after an error."""

from __future__ import annotations

import threading

import psycopg
import pytest
from label_backfill import hooks

pytestmark = pytest.mark.integration


@pytest.fixture
def dsn(stack):
    hooks.close_arrow_connections()
    yield stack[1]
    hooks.close_arrow_connections()


def backend(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def state_of(dsn: str, pid: int) -> str | None:
    with psycopg.connect(dsn) as watcher:
        row = watcher.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row[0] if row else None


def test_blocks_one_after_another_share_a_connection_left_idle(dsn):
    with hooks.arrow_postgres(dsn) as conn:
        first = backend(conn)
        assert state_of(dsn, first) == "idle in transaction"  # ADBC reads in a transaction ...
    assert state_of(dsn, first) == "idle"  # ... rolled back when the block ends
    with hooks.arrow_postgres(dsn) as conn:
        assert backend(conn) == first


def test_a_block_that_raises_closes_its_connection(dsn):
    with pytest.raises(RuntimeError), hooks.arrow_postgres(dsn) as conn:
        broken = backend(conn)
        raise RuntimeError("the read failed")
    with hooks.arrow_postgres(dsn) as conn:
        assert backend(conn) != broken
    assert state_of(dsn, broken) is None


def test_blocks_at_the_same_time_get_their_own_connections(dsn):
    inside, release, seen = threading.Barrier(4), threading.Event(), []

    def read() -> None:
        with hooks.arrow_postgres(dsn) as conn:
            seen.append(backend(conn))
            inside.wait(timeout=30)
            release.wait(timeout=30)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for r in readers:
        r.start()
    inside.wait(timeout=30)
    release.set()
    for r in readers:
        r.join(timeout=30)
    assert len(set(seen)) == 3
