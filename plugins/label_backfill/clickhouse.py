"""I/O on one customer's label table: schema, range delete, mutations. Identifiers validated, values bound."""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from typing import Any

from label_backfill import sql
from label_backfill.chdb_lock import polling_held
from label_backfill.naming import DayRange, validate_customer_id, validate_identifier
from label_backfill.settings import LABEL_TABLE

log = logging.getLogger(__name__)


class MutationState(enum.StrEnum):
    DONE = "done"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True)
class MutationCheck:
    state: MutationState
    reason: str = ""
    pending: tuple[str, ...] = ()


class MutationFailed(RuntimeError):
    """A mutation our delete depends on failed; ClickHouse's ``latest_fail_reason`` is in the message."""


class MutationTimeout(TimeoutError):
    pass


class DeleteStateUnknown(RuntimeError):
    """ClickHouse may have accepted a delete whose mutations cannot be read: a person must look."""


def check_mutations(rows: Iterable[dict[str, Any]], watched: Iterable[tuple[str, str]]) -> MutationCheck:
    """Decide whether the watched ``(host, mutation_id)`` mutations are done, pending or failed.

    Pure: shared by the sensor, its trigger and the in-task wait. ``rows`` are ``mutations.sql`` rows of
    every replica. A watched mutation also fails when an earlier unfinished mutation on the same host has
    failed, because mutations run in order and ours can never finish behind it.
    """
    rows = list(rows)
    by_key = {(r["host"], r["mutation_id"]): r for r in rows}
    pending = []
    for host, mutation_id in watched:
        row = by_key.get((host, mutation_id))
        if row is None or row["is_done"]:
            continue  # a finished mutation may already be trimmed from system.mutations
        blockers = [
            r
            for r in rows
            if r["host"] == host
            and not r["is_done"]
            and r["latest_fail_reason"]
            and r["create_time"] <= row["create_time"]
        ]
        if blockers:
            first = min(blockers, key=lambda r: (r["create_time"], r["mutation_id"]))
            return MutationCheck(
                MutationState.FAILED,
                reason=f"mutation {first['mutation_id']} on {host} ({first['command']}) failed: "
                f"{first['latest_fail_reason']}",
            )
        pending.append(f"{host}:{mutation_id} ({row['parts_to_do']} parts to do)")
    if pending:
        return MutationCheck(MutationState.PENDING, pending=tuple(pending))
    return MutationCheck(MutationState.DONE)


def read_table_name(cluster: str | None) -> str:
    """The label table readers query: the Distributed ``conversation_with_labels_d`` on a cluster, else the
    local table. The one place that decides it (``LabelTable.read_table``, ``Settings.read_table``)."""
    return f"{LABEL_TABLE}_d" if cluster else LABEL_TABLE


class LabelTable:
    """One customer's ``conversation_with_labels``, single node or cluster: the one owner of the table's identity
    (database, cluster and so the table read) for every ClickHouse reader and writer of the package.

    :param client: a clickhouse-connect client (``ClickHouseHook.get_client()``).
    :param database: the customer's database.
    :param cluster: cluster name (``ON CLUSTER``, ``clusterAllReplicas``, reads via ``_d``), or None.
    """

    def __init__(self, client: Any, database: str, cluster: str | None = None) -> None:
        self.client = client
        self.database = validate_identifier(database, "database")
        self.cluster = validate_identifier(cluster, "cluster") if cluster else None

    @property
    def read_table(self) -> str:
        return read_table_name(self.cluster)

    @property
    def read_name(self) -> str:
        """``database.table`` as readers query it, for messages."""
        return f"{self.database}.{self.read_table}"

    def read_sql(self, name: str) -> str:
        """The named ClickHouse query (``label_backfill/sql/clickhouse/<name>.sql``) on the table readers query."""
        return sql.clickhouse(name, database=self.database, table=self.read_table)

    def query(self, name: str, params: dict[str, Any]) -> list[tuple]:
        """Rows of the named read query, values bound."""
        return self.client.query(self.read_sql(name), parameters=params).result_rows

    def create(self, *, dedup_window: int | None = None) -> None:
        """Create the database and table(s) if absent (``dedup_window``: single-node hazard reproduction)."""
        on_cluster = sql.on_cluster(self.cluster)
        self.client.command(sql.clickhouse("create_database", database=self.database, on_cluster=on_cluster))
        if self.cluster:
            for name in ("create_table_replicated", "create_table_distributed"):
                self.client.command(sql.clickhouse(name, database=self.database, cluster=self.cluster))
            return
        settings = (
            f"SETTINGS non_replicated_deduplication_window = {int(dedup_window)}" if dedup_window else ""
        )
        self.client.command(
            sql.clickhouse("create_table_single", database=self.database, table_settings=settings)
        )

    def exists(self) -> bool:
        rows = self.client.query(
            "SELECT count() FROM system.tables WHERE database = {database:String} AND name = {table:String}",
            parameters={"database": self.database, "table": self.read_table},
        ).result_rows
        return bool(rows and rows[0][0])

    def row_count(self, customer: str, days: DayRange) -> int:
        params = {"customer_id": validate_customer_id(customer), "start": days.start, "end": days.end}
        return int(self.query("range_row_count", params)[0][0])

    def delete_sql(self) -> str:
        return sql.clickhouse("delete_range", database=self.database, on_cluster=sql.on_cluster(self.cluster))

    def mutations_sql(self) -> str:
        return sql.clickhouse("mutations", mutations_source=sql.mutations_source(self.cluster))

    def mutations(self) -> list[dict[str, Any]]:
        result = self.client.query(self.mutations_sql(), parameters={"database": self.database})
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    def delete_range(
        self, customer: str, days: DayRange, conversation_ids: Iterable[str] = ()
    ) -> list[tuple[str, str]]:
        """Start the delete of the customer's rows starting in ``days`` (and every row of ``conversation_ids``).

        Returns the ``(host, mutation_id)`` it created; the mutation runs asynchronously (``mutations_sync =
        0``): wait with the sensor or ``wait``. When the ALTER or the listing after it fails, ClickHouse may
        still have accepted the delete: the mutations are looked for again, and returned if found (so the run
        goes on to rewrite what they delete); if they cannot be read at all, ``DeleteStateUnknown`` says so.
        """
        before = {(r["host"], r["mutation_id"]) for r in self.mutations()}
        params = {
            "customer_id": validate_customer_id(customer),
            "start": days.start,
            "end": days.end,
            "conversation_ids": sorted(set(conversation_ids)),
        }
        try:
            self.client.command(self.delete_sql(), parameters=params, settings={"mutations_sync": 0})
            created = self.created_mutations(customer, before)
        except Exception as err:
            log.warning(
                "delete of %s %s failed (%s); looking for a mutation ClickHouse accepted", customer, days, err
            )
            created = self.created_mutations(customer, before, attempts=3, error=err)
            if not created:
                raise
            log.warning("ClickHouse accepted the delete despite the error: mutations %s", created)
        log.info("delete of %s %s in %s started mutations %s", customer, days, self.database, created)
        return created

    def created_mutations(
        self,
        customer: str,
        before: set[tuple[str, str]],
        *,
        attempts: int = 1,
        error: BaseException | None = None,
    ) -> list[tuple[str, str]]:
        """Mutations of this customer's delete that are not in ``before`` (matched on the command text)."""
        needle = f"customer_id = '{validate_customer_id(customer)}'"
        for attempt in range(attempts):
            try:
                rows = self.mutations()
            except Exception as err:
                if attempt + 1 < attempts:
                    time.sleep(1.0 + attempt)
                    continue
                raise DeleteStateUnknown(
                    f"ClickHouse may have accepted the delete of {customer} in {self.database} "
                    f"({error or 'the ALTER succeeded'}) but its mutations cannot be read ({err}): check "
                    f"system.mutations WHERE database = '{self.database}' AND NOT is_done, and KILL MUTATION a "
                    "delete of this customer before anything else; nothing was rewritten"
                ) from err
            return sorted({(r["host"], r["mutation_id"]) for r in rows if needle in r["command"]} - before)
        return []

    def kill(self, watched: Iterable[tuple[str, str]], *, timeout: float = 30.0) -> list[str]:
        """Kill the watched mutations that are not done yet (every replica on a cluster); return them.

        A killed delete leaves the parts it already rewrote as they are: it stops, it does not undo.
        """
        watched = set(watched)
        rows = self.mutations()
        pending = [r for r in rows if (r["host"], r["mutation_id"]) in watched and not r["is_done"]]
        if not pending:
            return []
        ids = sorted({r["mutation_id"] for r in pending})
        self.client.query(
            sql.clickhouse("kill_mutations", on_cluster=sql.on_cluster(self.cluster)),
            parameters={"database": self.database, "mutation_ids": ids},
        )
        deadline = time.monotonic() + timeout
        with closing(polling_held(self.client, "waiting for KILL MUTATION")) as polls:
            for _ in polls:
                left = [
                    r["mutation_id"]
                    for r in self.mutations()
                    if (r["host"], r["mutation_id"]) in watched and not r["is_done"]
                ]
                if not left:
                    break
                if time.monotonic() > deadline:
                    raise MutationTimeout(
                        f"mutations {', '.join(left)} still listed {timeout:.0f} s after KILL MUTATION"
                    )
                time.sleep(0.2)
        killed = [f"{r['host']}:{r['mutation_id']} ({r['parts_to_do']} parts not yet done)" for r in pending]
        log.warning("killed our delete mutation(s) in %s: %s", self.database, ", ".join(killed))
        return killed

    def straddling(self, customer: str, days: DayRange) -> dict[str, list[dt.date]]:
        """Conversations with rows both inside ``days`` and outside, with their outside start days."""
        params = {"customer_id": validate_customer_id(customer), "start": days.start, "end": days.end}
        return {cid: list(outside) for cid, outside in self.query("straddling", params)}

    def day_fingerprints(
        self, customer: str, days: Iterable[dt.date], exclude: Iterable[str] = ()
    ) -> dict[str, list[int]]:
        """ClickHouse-only ``{day: [rows, checksum of every column]}``, leaving ``exclude`` out."""
        params = {
            "customer_id": validate_customer_id(customer),
            "days": sorted(days),
            "exclude": sorted(set(exclude)),
        }
        return {
            day.isoformat(): [int(rows), int(checksum)]
            for day, rows, checksum in self.query("day_fingerprints", params)
        }

    def wait(self, watched: list[tuple[str, str]], *, timeout: float, poll: float = 0.2) -> None:
        """Block until the watched mutations are done; raise ``MutationFailed`` / ``MutationTimeout``."""
        deadline = time.monotonic() + timeout
        # embedded chdb: the engine runs a mutation only while open, so the polls hold it in batches
        with closing(polling_held(self.client, "waiting for mutations")) as polls:
            for _ in polls:
                check = check_mutations(self.mutations(), watched)
                if check.state is MutationState.DONE:
                    return
                if check.state is MutationState.FAILED:
                    raise MutationFailed(check.reason)
                if time.monotonic() > deadline:
                    raise MutationTimeout(
                        f"mutations still running after {timeout:.0f} s: {', '.join(check.pending)}"
                    )
                time.sleep(poll)
