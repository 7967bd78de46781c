"""Deferred wait for ClickHouse mutations: the trigger carries plain values and rebuilds its client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from label_backfill.chdb_lock import POLL_BATCH_SECONDS, LockedChdbClient, held
from label_backfill.clickhouse import LabelTable, MutationState, check_mutations


class ClickHouseMutationTrigger(BaseTrigger):
    """Poll ``system.mutations`` until the watched mutations are done or one has failed.

    :param clickhouse_conn_id: Airflow connection of the ClickHouse server.
    :param database: the customer's database.
    :param cluster: cluster name, or None for a single node.
    :param mutations: watched ``[host, mutation_id]`` pairs.
    :param poll_interval: seconds between polls.
    """

    def __init__(
        self,
        clickhouse_conn_id: str,
        database: str,
        cluster: str | None,
        mutations: list[list[str]],
        poll_interval: float = 5.0,
    ) -> None:
        super().__init__()
        self.clickhouse_conn_id = clickhouse_conn_id
        self.database = database
        self.cluster = cluster
        self.mutations = [list(m) for m in mutations]
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "label_backfill.triggers.ClickHouseMutationTrigger",
            {
                "clickhouse_conn_id": self.clickhouse_conn_id,
                "database": self.database,
                "cluster": self.cluster,
                "mutations": self.mutations,
                "poll_interval": self.poll_interval,
            },
        )

    def _check(self) -> Any:
        from label_backfill.hooks import clickhouse_client

        table = LabelTable(clickhouse_client(self.clickhouse_conn_id), self.database, self.cluster)
        watched = [tuple(m) for m in self.mutations]
        # the embedded chdb runs a mutation only while a process holds it: there, hold it for a batch of polls
        batch = POLL_BATCH_SECONDS if isinstance(table.client, LockedChdbClient) else 0.0
        with held(table.client, "waiting for mutations (triggerer)"):
            check = check_mutations(table.mutations(), watched)
            end = time.monotonic() + batch
            while check.state is MutationState.PENDING and time.monotonic() < end:
                time.sleep(0.25)
                check = check_mutations(table.mutations(), watched)
        return check

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            check = await asyncio.to_thread(self._check)
            if check.state is not MutationState.PENDING:
                yield TriggerEvent({"status": check.state.value, "reason": check.reason})
                return
            self.log.info("waiting for %s", ", ".join(check.pending))
            await asyncio.sleep(self.poll_interval)
