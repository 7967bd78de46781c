"""One run at a time per customer: a lease row in the state database (connection ``label_backfill_state``).

A repair deletes a range and rewrites it day by day over several tasks; a second run on the same customer in
between would delete rows the first just wrote, or rewrite days the first is about to delete. Airflow has no
per-customer run limit (``max_active_runs`` is per DAG, pools are per task), so a run claims its customer
before the preflight and every task that deletes or rewrites checks it still holds it.

The claim is Postgres' ``INSERT ... ON CONFLICT DO NOTHING`` on the customer's primary key: atomic, so two
runs claiming at the same moment never both win. A lease outlives its task (it spans the run) and is released
by the run's last task; one left by a run that ended without releasing it (marked failed in the UI, its
worker killed) is taken over once Airflow reports that run finished, by a compare-and-set on the old holder.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from label_backfill import sql
from label_backfill.settings import STATE_CONN_ID

log = logging.getLogger(__name__)

# Airflow's finished dag run states: a holder in one of them will never release its lease itself.
FINISHED_RUN_STATES = frozenset({"success", "failed"})
_ATTEMPTS = 5  # a claim races at most a release or a take-over per attempt


@dataclass(frozen=True)
class Holder:
    """The run holding a customer's lease."""

    dag_id: str
    run_id: str
    claimed_at: dt.datetime | None = None

    def describe(self) -> str:
        since = f" since {self.claimed_at:%Y-%m-%d %H:%M:%S %Z}" if self.claimed_at else ""
        return f"run {self.run_id!r} of {self.dag_id}{since}"


RunFinished = Callable[[str, str], bool]
"""``(dag_id, run_id) -> whether that run is finished`` (or gone): its lease may be taken over."""


class LeaseHeld(Exception):
    """Another run holds the customer: this run must not delete or rewrite it now."""

    def __init__(self, customer: str, holder: Holder) -> None:
        self.customer, self.holder = customer, holder
        super().__init__(f"customer {customer} is being repaired by {holder.describe()}")


class CustomerLeases:
    """The lease table, through a DB-API connection factory (``PostgresHook.get_conn`` in the DAGs).

    :param connect: returns a new psycopg connection to the state database; closed after each call.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._table_ready = False

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        conn = self._connect()
        try:
            conn.autocommit = True  # every statement is its own atomic step
            with conn.cursor() as cur:
                if not self._table_ready:
                    _ensure_table(cur)
                    self._table_ready = True
                yield cur
        finally:
            conn.close()

    def holder(self, customer: str) -> Holder | None:
        with self._cursor() as cur:
            return _holder(cur, customer)

    def claim(self, customer: str, dag_id: str, run_id: str, finished: RunFinished) -> Holder | None:
        """Take the customer for this run; return None when it is ours, else the run holding it.

        Idempotent: a run holding it already gets None (a retried or cleared task claims again).

        :param finished: whether a holder's run is finished: its lease is then taken over.
        """
        me = {"customer": customer, "dag_id": dag_id, "run_id": run_id}
        with self._cursor() as cur:
            for _ in range(_ATTEMPTS):
                cur.execute(sql.state("claim"), me)
                if cur.fetchone():
                    log.info("customer %s: lease taken by run %s", customer, run_id)
                    return None
                holder = _holder(cur, customer)
                if holder is None:
                    continue  # released in between: claim again
                if (holder.dag_id, holder.run_id) == (dag_id, run_id):
                    return None
                if not finished(holder.dag_id, holder.run_id):
                    return holder
                cur.execute(
                    sql.state("take_over"), {**me, "old_dag_id": holder.dag_id, "old_run_id": holder.run_id}
                )
                if cur.fetchone():
                    log.warning(
                        "customer %s: took over the lease of %s, which ended without releasing it",
                        customer,
                        holder.describe(),
                    )
                    return None
        raise RuntimeError(
            f"customer {customer}: the lease changed hands {_ATTEMPTS} times while claiming it"
        )

    def hold(self, customer: str, dag_id: str, run_id: str, finished: RunFinished) -> None:
        """Claim without waiting: ``LeaseHeld`` naming the other run when it holds the customer."""
        holder = self.claim(customer, dag_id, run_id, finished)
        if holder is not None:
            raise LeaseHeld(customer, holder)

    def release(self, customer: str, dag_id: str, run_id: str) -> bool:
        """Give the customer back if this run holds it; whether it did."""
        with self._cursor() as cur:
            cur.execute(sql.state("release"), {"customer": customer, "dag_id": dag_id, "run_id": run_id})
            released = cur.fetchone() is not None
        if released:
            log.info("customer %s: lease released by run %s", customer, run_id)
        return released


def _ensure_table(cur: Any) -> None:
    """Create the lease table on first use (a role without CREATE needs it made once: ``state/leases.sql``)."""
    import psycopg

    cur.execute("SELECT to_regclass('label_backfill_customer_lease') IS NOT NULL")
    if cur.fetchone()[0]:
        return
    try:
        cur.execute(sql.state("leases"))
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
        pass  # another run created it at the same moment (CREATE ... IF NOT EXISTS is not race-free)


def _holder(cur: Any, customer: str) -> Holder | None:
    cur.execute(sql.state("holder"), {"customer": customer})
    row = cur.fetchone()
    return Holder(row[0], row[1], row[2]) if row else None


def state_leases(conn_id: str = STATE_CONN_ID) -> CustomerLeases:
    """The deployment's leases, on the state connection (``PostgresHook``)."""
    from label_backfill.hooks import postgres_connection

    return CustomerLeases(lambda: postgres_connection(conn_id))


def run_finished(ti: Any) -> RunFinished:
    """``RunFinished`` asked of Airflow through a running task's instance (the Task SDK's execution API)."""

    def finished(dag_id: str, run_id: str) -> bool:
        if not ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
            return True  # deleted: nobody will release it
        return (
            str(getattr(state := ti.get_dagrun_state(dag_id, run_id), "value", state)) in FINISHED_RUN_STATES
        )

    return finished
