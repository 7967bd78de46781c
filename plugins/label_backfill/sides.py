"""Both sides of a customer's comparison, as the DAGs' tasks reach them: the one place that builds them.

Postgres through the provider's hook (``hooks.postgres_side``, open for a ``with`` block); ClickHouse through
its hook, on the deployment's cluster, which decides the table read (``LabelTable``, the side's ``table``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

from label_backfill import hooks
from label_backfill.compare import ClickHouseSide, PostgresSide
from label_backfill.settings import Settings


@dataclass(frozen=True)
class Sides:
    """How a task opens the comparison's two sides.

    :param cluster: ``Settings.clickhouse_cluster``: None on a single node.
    """

    cluster: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> Sides:
        return cls(settings.clickhouse_cluster)

    def postgres(self) -> AbstractContextManager[PostgresSide]:
        """The Postgres side, open for a ``with`` block and closed after it."""
        return hooks.postgres_side()

    def clickhouse(self, database: str) -> ClickHouseSide:
        """The ClickHouse side of a customer's database; ``.table`` is its ``LabelTable``."""
        return ClickHouseSide(hooks.clickhouse_client(), database, self.cluster)
