"""Per-customer leases on the real Postgres server (the state database of the embedded stack)."""

from __future__ import annotations

import threading
import uuid

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
def leases(stack):
    from label_backfill.leases import state_leases

    return state_leases()


def _never_finished(dag_id: str, run_id: str) -> bool:
    return False


def _customer() -> str:
    return f"lease-{uuid.uuid4().hex[:8]}"


def _claim_at_once(leases, customer: str, runs: int, finished) -> list[int]:
    """``runs`` threads claim ``customer`` at the same moment (run ids ``run-<i>``); the i of each winner."""
    barrier, won = threading.Barrier(runs), []

    def claim(i: int) -> None:
        barrier.wait()
        if leases.claim(customer, "dag", f"run-{i}", finished) is None:
            won.append(i)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return won


def test_one_claim_wins_when_many_claim_at_once(leases):
    customer = _customer()
    won = _claim_at_once(leases, customer, 8, _never_finished)
    assert len(won) == 1
    assert leases.holder(customer).run_id == f"run-{won[0]}"


def test_the_holder_claims_again_and_others_see_it_named(leases):
    from label_backfill.leases import LeaseHeld

    customer = _customer()
    assert leases.claim(customer, "dag", "first", _never_finished) is None
    assert leases.claim(customer, "dag", "first", _never_finished) is None  # a retried task
    holder = leases.claim(customer, "dag", "second", _never_finished)
    assert (holder.dag_id, holder.run_id) == ("dag", "first")
    with pytest.raises(LeaseHeld, match=f"customer {customer} is being repaired by run 'first' of dag"):
        leases.hold(customer, "dag", "second", _never_finished)


def test_only_the_holder_releases(leases):
    customer = _customer()
    leases.claim(customer, "dag", "first", _never_finished)
    assert not leases.release(customer, "dag", "second")
    assert leases.holder(customer).run_id == "first"
    assert leases.release(customer, "dag", "first")
    assert leases.holder(customer) is None
    assert leases.claim(customer, "dag", "second", _never_finished) is None


def test_a_finished_holder_is_taken_over_once(leases):
    customer = _customer()
    leases.claim(customer, "dag", "crashed", _never_finished)

    def finished(dag_id: str, run_id: str) -> bool:
        return run_id == "crashed"

    won = _claim_at_once(leases, customer, 4, finished)
    assert len(won) == 1
    assert leases.holder(customer).run_id == f"run-{won[0]}"
