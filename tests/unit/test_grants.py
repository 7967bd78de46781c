"""The shipped grants, as text: every SQL file the production code runs maps to a grant, and every grant is
needed by one (single node, cluster, local runner). chdb can enforce only the single-node ones
(``tests/integration/test_least_privilege.py`` runs the DAGs with them): it has no cluster (``ON CLUSTER``
fails with code 392 before any access check), so the cluster grants are checked here against what those
statements need and parsed by the engine in ``test_least_privilege.py``.
"""

from __future__ import annotations

import pytest
from label_backfill import sql

pytestmark = pytest.mark.unit

DB, USER = "alaska_air_us_east_1", "label_backfill"
LOCAL, DIST = f"{DB}.conversation_with_labels", f"{DB}.conversation_with_labels_d"

# What each ClickHouse statement the DAGs run needs: (privilege, object) on a single node / added on a cluster.
# "read" = the table readers query (the local table; on a cluster the Distributed one, whose shards read the
# local table as the same user).
READ = "read"
NEEDS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "conversation_labels": ([("SELECT", READ)], []),
    "day_fingerprints": ([("SELECT", READ)], []),
    "day_summary": ([("SELECT", READ)], []),
    "range_row_count": ([("SELECT", READ)], []),
    "rows": ([("SELECT", READ)], []),
    "fingerprints": ([("SELECT", READ)], []),
    "straddling": ([("SELECT", READ)], []),
    "usecase_distribution": ([("SELECT", READ)], []),
    "delete_range": ([("ALTER DELETE", LOCAL)], [("CLUSTER", "*.*")]),
    # ClickHouse allows KILL MUTATION to whoever may run the killed mutation's command (ALTER DELETE)
    "kill_mutations": ([("ALTER DELETE", LOCAL)], [("CLUSTER", "*.*")]),
    "mutations": ([("SELECT", "system.mutations")], [("REMOTE", "*.*")]),
    # LabelTable.exists(), an inline query
    "<exists>": ([("SELECT", "system.tables")], []),
}
# Run only by the simulator and by whoever provisions a customer, never by the DAGs.
PROVISIONING = {
    "create_database",
    "create_table_single",
    "create_table_replicated",
    "create_table_distributed",
}
GRANT_FILES = {"grants", "grants_cluster", "grants_local_runner", "grants_local_runner_cluster"}
# The reference job in the worker (local runner): one insert per slice, into the table it writes.
LOCAL_RUNNER = ([("INSERT", LOCAL)], [("INSERT", DIST)])


def privileges(grants: list[str]) -> set[tuple[str, str]]:
    found = set()
    for grant in grants:
        names, target = grant.removeprefix("GRANT ").rsplit(" TO ", 1)[0].rsplit(" ON ", 1)
        found |= {(name.strip(), target) for name in names.split(",")}
    return found


def needed(cluster: bool, local_runner: bool) -> set[tuple[str, str]]:
    found = set()
    for single, added in [*NEEDS.values(), *([LOCAL_RUNNER] if local_runner else [])]:
        for privilege, target in [*single, *(added if cluster else [])]:
            if target == READ:  # the Distributed table's shards read the local table as the same user
                found |= {(privilege, LOCAL)} | ({(privilege, DIST)} if cluster else set())
            else:
                found.add((privilege, target))
    if cluster and local_runner:
        found.add(("INSERT", LOCAL))  # forwarded from the Distributed table to the shards' local tables
    return found


def test_every_clickhouse_sql_file_is_mapped_to_its_grants():
    files = {path.stem for path in (sql.SQL_DIR / "clickhouse").glob("*.sql")}
    unmapped = files - set(NEEDS) - PROVISIONING - GRANT_FILES
    assert unmapped == set(), f"add the grants these statements need to NEEDS (and grants*.sql): {unmapped}"


@pytest.mark.parametrize("cluster", [False, True], ids=["single", "cluster"])
@pytest.mark.parametrize("local_runner", [False, True], ids=["kubernetes", "local"])
def test_the_grants_are_exactly_what_the_statements_need(cluster, local_runner):
    shipped = privileges(sql.clickhouse_grants(DB, USER, cluster=cluster, local_runner=local_runner))
    assert shipped == needed(cluster, local_runner)


def test_the_dags_never_get_ddl_or_writes_beyond_the_delete():
    everything = privileges(sql.clickhouse_grants(DB, USER, cluster=True, local_runner=False))
    assert {p for p, _ in everything} == {"SELECT", "ALTER DELETE", "CLUSTER", "REMOTE"}
    assert all(
        statement.endswith(f" TO {USER}") for statement in sql.clickhouse_grants(DB, USER, cluster=True)
    )


def test_grant_identifiers_are_validated():
    with pytest.raises(ValueError):
        sql.clickhouse_grants("db; DROP TABLE x", USER)
    with pytest.raises(ValueError):
        sql.clickhouse_grants(DB, "u TO default")
    with pytest.raises(ValueError):
        sql.postgres_readonly_role("reader", "conversations; DROP")


def test_the_postgres_role_reads_the_three_tables_and_nothing_else():
    statements = sql.postgres_readonly_role("label_backfill_reader", "conversations")
    assert statements == [
        "GRANT CONNECT ON DATABASE conversations TO label_backfill_reader",
        "GRANT USAGE ON SCHEMA public TO label_backfill_reader",
        "GRANT SELECT ON TABLE profiles, users, conversations TO label_backfill_reader",
        "ALTER ROLE label_backfill_reader SET default_transaction_read_only = on",
    ]
    # every Postgres statement the package runs reads one of those tables (no INSERT/UPDATE/DELETE/DDL)
    for path in (sql.SQL_DIR / "postgres").glob("*.sql"):
        if path.stem in {"schema", "readonly_role"}:  # set-up, not the DAGs
            continue
        code = " ".join(sql.statements(path.read_text())).upper()
        assert code.lstrip("( ").startswith(("SELECT", "WITH")), path.name
        for verb in ("INSERT ", "UPDATE ", "DELETE ", "CREATE ", "ALTER ", "DROP ", "TRUNCATE "):
            assert verb not in code, (path.name, verb)


def test_the_cli_prints_the_statements(capsys):
    from label_backfill.sql.__main__ import main

    main(["grants", "--database", DB, "--user", USER, "--cluster"])
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{g};" for g in sql.clickhouse_grants(DB, USER, cluster=True)]
