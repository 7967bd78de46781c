"""The incident simulator deletes the simulated customers' rows and drops their ClickHouse databases: it
refuses every target that is not the embedded stack unless forced, before it touches anything, and its
refusal never shows a password."""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import pytest
from label_backfill.dev import simulate as sim
from label_backfill.dev.stack import Stack

pytestmark = pytest.mark.unit


class Untouchable:
    """A connection/client stand-in: any use beyond the attributes given fails the test."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)

    def __getattr__(self, name):
        raise AssertionError(f"the simulator used {name!r} of a target it should have refused")


@pytest.fixture
def stack(tmp_path, monkeypatch):
    """A stack whose server recorded the socket folder tmp/socket (no server needed)."""
    s = Stack(tmp_path / "stack")
    (tmp_path / "socket").mkdir()
    monkeypatch.setattr(Stack, "recorded_socket_dir", lambda self: tmp_path / "socket")
    return s


def embedded_pg(tmp_path):
    return Untouchable(info=SimpleNamespace(host=str(tmp_path / "socket")))


def embedded_ch(stack):
    return Untouchable(uri=f"chdb://{stack.chdb_path}")


def test_the_embedded_stack_passes(stack, tmp_path):
    sim.refuse_unless_embedded(embedded_pg(tmp_path), embedded_ch(stack), stack)
    (tmp_path / "link").symlink_to(tmp_path / "socket")  # another spelling of the same folder
    sim.refuse_unless_embedded(
        Untouchable(info=SimpleNamespace(host=str(tmp_path / "link"))), embedded_ch(stack), stack
    )


@pytest.mark.parametrize(
    "pg_host, ch_uri, expected",
    [
        ("db.prod.example", None, "Postgres host 'db.prod.example' is not the embedded stack's server"),
        ("/var/run/postgresql", None, "is not the embedded stack's server"),
        (
            None,
            "http://label_backfill:s3cret@clickhouse-s1:8123",
            "http://clickhouse-s1:8123 is not the embedded",
        ),
        (None, "chdb:///srv/other/chdb", "another chdb directory"),
    ],
)
def test_anything_else_is_refused_before_it_is_used(stack, tmp_path, pg_host, ch_uri, expected):
    pg = Untouchable(info=SimpleNamespace(host=pg_host or str(tmp_path / "socket")))
    ch = Untouchable(uri=ch_uri or f"chdb://{stack.chdb_path}")
    with pytest.raises(sim.NotEmbeddedError) as err:
        sim.simulate(pg, ch, stack=stack)  # Untouchable: any query would fail the test instead
    assert expected in str(err.value)
    assert sim.FORCE_FLAG in str(err.value) and "force_non_embedded=True" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_a_stack_without_a_running_server_refuses_every_postgres(tmp_path):
    stack = Stack(tmp_path / "stack")  # no postmaster.pid
    problem = sim.postgres_target_problem(str(tmp_path / "socket"), stack)
    assert problem and "has no server running" in problem


def test_forcing_skips_the_check(stack, tmp_path):
    pg = Untouchable(info=SimpleNamespace(host="db.prod.example", dsn="host=db.prod.example"))
    # forced, the simulator goes on and opens the job's connection: stop it there
    with pytest.raises(RuntimeError, match="reached the job connection"):
        with mock.patch.object(
            sim, "connect_postgres", side_effect=RuntimeError("reached the job connection")
        ):
            sim.simulate(pg, Untouchable(uri="http://ch:8123"), stack=stack, force_non_embedded=True)


def test_command_line_refuses_foreign_dsns_before_connecting(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABEL_BACKFILL_LOCAL_DIR", str(tmp_path / "stack"))
    started = []
    monkeypatch.setattr(Stack, "start_postgres", lambda self: started.append(self) or "host=/nowhere")
    for argv in (
        ["--postgres-dsn", "postgresql://conversations:hunter2@postgres:5432/conversations"],
        ["--postgres-dsn", "host=db.example password=hunter2 dbname=x"],
        ["--clickhouse-dsn", "http://label_backfill:hunter2@clickhouse-s1:8123"],
    ):
        with pytest.raises(SystemExit) as exit_:
            sim.main(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "refusing to simulate" in err and sim.FORCE_FLAG in err
        assert "hunter2" not in err
    assert started == [], "nothing may start or connect before the refusal"
