"""The embedded chdb shared by processes through ``label_backfill.chdb_lock``: one process at a time per call.

Every process here is a subprocess on its own data directory: this test process never opens chdb (chdb lets
one process open one directory only, and the session's stack has this process's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.integration

ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

# One process: 25 rounds of (insert its row, read the table), each call opening and closing the engine under
# the lock; prints when its first and last call ran and what it saw.
WRITER = """
import json, os, sys, time
from pathlib import Path
import clickhouse_connect
from label_backfill.chdb_lock import LockedChdbClient

path, rounds = sys.argv[1], int(sys.argv[2])
client = LockedChdbClient(lambda: clickhouse_connect.get_client(interface="chdb", path=path), Path(path))
client.command("CREATE TABLE IF NOT EXISTS t (pid UInt32, k UInt32) ENGINE = MergeTree ORDER BY (pid, k)")
first = time.time()
seen = []
for k in range(rounds):
    client.command("INSERT INTO t VALUES ({pid:UInt32}, {k:UInt32})", parameters={"pid": os.getpid(), "k": k})
    seen.append(client.query("SELECT count() FROM t").result_rows[0][0])
    time.sleep(0.02)
print(json.dumps({"pid": os.getpid(), "first": first, "last": time.time(), "seen": seen, **client.stats}))
"""

HOLDER = """
import os, sys, time
from pathlib import Path
from label_backfill.chdb_lock import DirectoryLock

with DirectoryLock(Path(sys.argv[1])).held("a long ClickHouse call"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_two_processes_interleave_their_calls_and_both_write_everything(tmp_path):
    data_dir = tmp_path / "chdb"
    argv = [sys.executable, "-c", WRITER, str(data_dir), "25"]
    procs = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs.append(subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    a, b = results
    # they ran at the same time: each started before the other ended
    assert a["first"] < b["last"] and b["first"] < a["last"], results
    # and interleaved: each saw rows of the other before its own last insert
    assert any(n > k + 1 for k, n in enumerate(a["seen"])) and any(n > k + 1 for k, n in enumerate(b["seen"]))
    assert a["opens"] == a["calls"] == 51 and b["opens"] == b["calls"] == 51  # one open per call
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, clickhouse_connect; c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1]);"
            "print(c.query('SELECT pid, count(), groupArraySorted(100)(k) = range(25) FROM t GROUP BY pid "
            "ORDER BY pid').result_rows)",
            str(data_dir),
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert check.stdout.strip() == str(sorted([(a["pid"], 25, 1), (b["pid"], 25, 1)]))


def test_a_call_that_cannot_get_the_directory_in_time_fails_naming_the_holder(tmp_path):
    from label_backfill.chdb_lock import ChdbLockTimeout, LockedChdbClient

    data_dir = tmp_path / "chdb"
    task_env = {
        **ENV,
        "AIRFLOW_CTX_DAG_ID": "conversation_labels_backfill",
        "AIRFLOW_CTX_TASK_ID": "label_day",
        "AIRFLOW_CTX_DAG_RUN_ID": "manual__1",
        "AIRFLOW_CTX_TRY_NUMBER": "2",
    }
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir), "30"], env=task_env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        opened = []
        client = LockedChdbClient(lambda: opened.append(1), data_dir, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(ChdbLockTimeout) as raised:
            client.query("SELECT 1")
        assert 0.5 <= time.monotonic() - started < 10 and not opened  # bounded, and chdb was never opened
        message = str(raised.value)
        assert "is held by another process: waited " in message
        assert "(LABEL_BACKFILL_CHDB_LOCK_TIMEOUT_SECONDS=0.5)" in message
        assert (
            f"holder: pid {holder.pid} task conversation_labels_backfill.label_day run manual__1 try 2 since"
            in message
        )
        assert message.endswith(": a long ClickHouse call") and str(data_dir.resolve()) in message
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the killed holder's lock: the directory is free again at once
    opened = []
    assert LockedChdbClient(lambda: opened.append(1) or _Closeable(), data_dir, timeout=5).ping() == "pong"
    assert opened == [1]


class _Closeable:
    def ping(self) -> str:
        return "pong"

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"dsn": "chdb:///srv/stack/chdb"}, Path("/srv/stack/chdb")),
        ({"interface": "chdb", "path": "/srv/stack/chdb"}, Path("/srv/stack/chdb")),
        ({"dsn": "chdb://memory"}, None),
        ({"interface": "chdb", "path": ":memory:"}, None),
        ({"host": "clickhouse.internal", "port": 8443, "interface": "https"}, None),
    ],
)
def test_only_a_chdb_directory_is_locked(kwargs, expected):
    from label_backfill.chdb_lock import chdb_path

    assert chdb_path(kwargs) == expected
