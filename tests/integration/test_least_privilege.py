"""The whole backfill and the drift check as users with exactly the shipped grants.

ClickHouse: chdb runs every query as its user ``default`` (clickhouse-local takes no user, and its access
storage is ``users.xml`` only: ``CREATE USER`` fails with "no writeable access storage in user
directories"). But it enforces that user's ``<grants>`` from a ``users.xml`` given with ``--config-file``
(the chdb option ``config-file``, passed through the connection's ``client_kwargs.chdb_options``). An
engine's options are fixed when a process first opens it, and one process opens one path, so the data is
set up by an unrestricted process, then a second process runs the DAGs on the same path as ``default``
holding exactly ``sql.clickhouse_grants(..., local_runner=True)``, nothing else.

Postgres: that second process reads as the stack's read-only role (``sql/postgres/readonly_role.sql``),
which every other integration test uses too (``Stack.airflow_env``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.helpers import report_name

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATABASES = ("alaska_air_us_east_1", "horizon_air_us_west_2", "sun_country_us_east_1")
KILL_PROBE = "kill_probe_us_east_1"  # a table with a failing mutation: KILL MUTATION with the grants
USER = "default"

SET_UP = """
import json, sys, psycopg, clickhouse_connect
from label_backfill.clickhouse import LabelTable
from label_backfill.dev.simulate import simulate
conninfo, path, probe = sys.argv[1:4]
ch = clickhouse_connect.get_client(interface="chdb", path=path)
with psycopg.connect(conninfo) as pg:  # its own chdb folder beside the session's stack, on purpose
    simulate(pg, ch, scale_name="small", seed=7, force_non_embedded=True)
table = LabelTable(ch, probe)
table.create()
ch.command(f"INSERT INTO {probe}.conversation_with_labels (customer_id, conversation_id) VALUES ('p', 'p1')")
ch.command(
    f"ALTER TABLE {probe}.conversation_with_labels DELETE WHERE throwIf(conversation_id = 'p1')",
    settings={"mutations_sync": 0},
)
print("RESULT:" + json.dumps([r["mutation_id"] for r in table.mutations() if not r["is_done"]]))
"""

AS_RESTRICTED = """
import datetime as dt, json, sys
from label_backfill import hooks
from label_backfill.clickhouse import LabelTable
from tests.helpers import load_dag, run_dag

probe, reports = sys.argv[1], sys.argv[2]
out = {}
run, states = run_dag("conversation_labels_backfill",
                      {"customer": "alaska-air", "start_date": "2026-02-01", "end_date": "2026-02-14"})
out["backfill"] = {"state": str(run.state), "states": states, "run_id": run.run_id}
drift = load_dag("conversation_labels_drift_check").test(
    logical_date=dt.datetime(2026, 2, 15, 4, tzinfo=dt.UTC),
    run_conf={"lookback_days": 14, "customers": ["alaska-air", "horizon-air", "sun-country"]},
)
out["drift"] = {"state": str(drift.state), "run_id": drift.run_id}
client = hooks.clickhouse_client()
out["grants"] = [row[0] for row in client.query("SHOW GRANTS").result_rows]
table = LabelTable(client, probe)
pending = [(r["host"], r["mutation_id"]) for r in table.mutations() if not r["is_done"]]
out["killed"] = table.kill(pending)
out["denied"] = {}
for statement in [
    "CREATE DATABASE lp_probe",
    "DROP TABLE alaska_air_us_east_1.conversation_with_labels",
    "TRUNCATE TABLE alaska_air_us_east_1.conversation_with_labels",
    "ALTER TABLE alaska_air_us_east_1.conversation_with_labels UPDATE usecase_id = 'x' WHERE 1",
    "SELECT count() FROM alaska_air_us_east_1.label_conversations_watermark",
    "INSERT INTO alaska_air_us_east_1.label_conversations_watermark (customer_id) VALUES ('x')",
    "SELECT count() FROM system.users",
]:
    try:
        client.command(statement)
        out["denied"][statement] = "ALLOWED"
    except Exception as err:
        out["denied"][statement] = str(err).split("(version")[0].strip()
with hooks.postgres_connection() as pg:
    out["pg_user"] = pg.execute("SELECT current_user").fetchone()[0]
    try:
        pg.execute("UPDATE profiles SET region = region")
        out["pg_write"] = "ALLOWED"
    except Exception as err:
        out["pg_write"] = str(err)
print("RESULT:" + json.dumps(out))
"""


def run_python(script: str, *args: str, env: dict[str, str], timeout: float = 600) -> object:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT:")]
    assert result.returncode == 0 and lines, (
        f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return json.loads(lines[-1].removeprefix("RESULT:"))


def privileges(grants: list[str]) -> set[tuple[str, str]]:
    """``GRANT A, B ON x TO u`` statements as {(A, x), (B, x)} (SHOW GRANTS merges privileges per object)."""
    found = set()
    for grant in grants:
        body = grant.removeprefix("GRANT ").rsplit(" TO ", 1)[0]
        names, target = body.rsplit(" ON ", 1)
        found |= {(name.strip(), target) for name in names.split(",")}
    return found


def users_xml(grants: list[str]) -> str:
    """chdb's users.xml: ``default`` with exactly these grants (XML grants carry no ``TO``)."""
    queries = "".join(f"<query>{escape(g.removesuffix(f' TO {USER}'))}</query>" for g in grants)
    return (
        "<clickhouse><profiles><default/></profiles><quotas><default/></quotas><users><default>"
        "<password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks>"
        f"<profile>default</profile><quota>default</quota><grants>{queries}</grants>"
        "</default></users></clickhouse>"
    )


@pytest.fixture(scope="module")
def restricted_run(stack, airflow_db, tmp_path_factory):
    from label_backfill import sql

    home = tmp_path_factory.mktemp("least-privilege")
    chdb_path = home / "chdb"
    grants = [
        g for db in (*DATABASES, KILL_PROBE) for g in sql.clickhouse_grants(db, USER, local_runner=True)
    ]
    grants = list(dict.fromkeys(grants))  # the system.* grants once
    (home / "users.xml").write_text(users_xml(grants))
    (home / "config.xml").write_text(
        f"<clickhouse><user_directories><users_xml><path>{home / 'users.xml'}</path></users_xml>"
        "</user_directories></clickhouse>"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    pending = run_python(SET_UP, stack[1], str(chdb_path), KILL_PROBE, env=env)
    assert len(pending) == 1, pending  # the probe's failing delete
    client_kwargs = {
        "interface": "chdb",
        "path": str(chdb_path),
        "chdb_options": {"config-file": str(home / "config.xml")},
    }
    # schema: chdb's client enters the connection's database with USE, which needs a grant in it (SHOW
    # DATABASES, implied by any grant there); the HTTP interface's database parameter checks none. Every
    # query of the package names its database, so the test starts in one the grants cover.
    env["AIRFLOW_CONN_CLICKHOUSE_CONVERSATIONS"] = json.dumps(
        {"conn_type": "clickhouse", "schema": "system", "extra": {"client_kwargs": client_kwargs}}
    )
    out = run_python(AS_RESTRICTED, KILL_PROBE, os.environ["LABEL_BACKFILL_REPORT_DIR"], env=env)
    return grants, out


def test_the_backfill_repairs_to_exact_with_only_the_shipped_grants(restricted_run, reports_dir):
    _grants, out = restricted_run
    backfill = out["backfill"]
    assert backfill["state"] == "success", backfill["states"]
    assert backfill["states"]["label_day"] == ["success"] * 14
    report = json.loads(
        (reports_dir / "conversation_labels_backfill" / report_name(backfill["run_id"])).read_text()
    )
    assert report["verdict"] == "EXACT" and report["ok"] is True


def test_the_drift_check_compares_every_customer_with_only_the_shipped_grants(restricted_run, reports_dir):
    _grants, out = restricted_run
    report = json.loads(
        (reports_dir / "conversation_labels_drift_check" / report_name(out["drift"]["run_id"])).read_text()
    )
    # alaska-air was just repaired; the simulated incident is still in the other two: all three compared
    assert {c["customer"]: c["status"] for c in report["customers"]} == {
        "alaska-air": "clean",
        "horizon-air": "drift",
        "sun-country": "drift",
    }
    assert out["drift"]["state"] == "failed"  # the drift alert, by design


def test_the_engine_ran_with_exactly_the_shipped_grants_and_refused_the_rest(restricted_run):
    grants, out = restricted_run
    assert privileges(out["grants"]) == privileges(grants), out["grants"]
    assert len(out["killed"]) == 1  # KILL MUTATION of a pending delete: ALTER DELETE on the table is enough
    for statement, outcome in out["denied"].items():
        assert "ACCESS_DENIED" in outcome or "Not enough privileges" in outcome, (statement, outcome)


def test_postgres_was_read_as_the_read_only_role(restricted_run):
    _grants, out = restricted_run
    assert out["pg_user"] == "label_backfill_reader"
    assert "read-only transaction" in out["pg_write"] or "permission denied" in out["pg_write"], out[
        "pg_write"
    ]


def test_the_engine_parses_every_shipped_grant_cluster_ones_included(ch):
    """chdb cannot run the cluster mode (no ON CLUSTER, no Distributed): its parser checks those grants."""
    from label_backfill import sql

    shipped = sql.clickhouse_grants("alaska_air_us_east_1", "label_backfill", cluster=True, local_runner=True)
    for statement in shipped:
        formatted = ch.query("SELECT formatQuery({q:String})", parameters={"q": statement}).result_rows[0][0]
        assert formatted == statement, (formatted, statement)


def test_a_stack_made_before_the_reader_gets_it_at_its_next_start(tmp_path):
    """A developer's .local from an earlier version: peer map for postgres only, no reader role."""
    import psycopg
    from label_backfill.dev.stack import POSTGRES_ROLE, READER_ROLE, Stack

    stack = Stack(tmp_path / ".local")
    try:
        conninfo = stack.start_postgres()
        ident = stack.pgdata / "pg_ident.conf"
        ident.write_text(
            "".join(line for line in ident.read_text().splitlines(True) if READER_ROLE not in line)
        )
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP OWNED BY {READER_ROLE}")
            conn.execute(f"DROP ROLE {READER_ROLE}")
        reader = conninfo.replace(f"user={POSTGRES_ROLE}", f"user={READER_ROLE}")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(reader).close()

        assert stack.start_postgres() == conninfo  # the server is running: map rewritten and reloaded
        with psycopg.connect(reader) as conn:
            assert conn.execute("SELECT current_user, count(*) FROM profiles").fetchone() == (READER_ROLE, 0)
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO profiles VALUES ('x', 'y')")
    finally:
        stack.remove_postgres()
