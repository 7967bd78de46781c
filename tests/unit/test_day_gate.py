"""The max_parallel_days gate: never more days at work than the run allows, and never all waiting.

Airflow's ``max_active_tis_per_dagrun`` cannot take a per-run value (see ``DayRewriteOperator``), so each
day asks the run's task states whether it may start. The gate must hold when days check at the same moment
(each then sees the others ``running``): at most ``max_parallel_days`` of them go, and at least one does.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException
from label_backfill.operators import DayRewriteOperator

pytestmark = pytest.mark.unit

FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")


class StubTI:
    """Just the task-instance calls the gate makes (the run's sibling states)."""

    dag_id, task_id, run_id = "conversation_labels_backfill", "label_day", "manual__1"

    def __init__(self, map_index: int, states: dict[str, str]) -> None:
        self.map_index, self.states = map_index, states

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert (dag_id, task_ids, run_ids) == (self.dag_id, [self.task_id], [self.run_id])
        return {self.run_id: dict(self.states)}


def operator(max_parallel_days: int) -> DayRewriteOperator:
    return DayRewriteOperator(
        task_id="label_day",
        customer="alaska-air",
        database="alaska_air_us_east_1",
        day="2026-02-03",
        max_parallel_days=max_parallel_days,
    )


def states(*by_index: str) -> dict[str, str]:
    return {f"label_day_{i}": s for i, s in enumerate(by_index)}


def goes(limit: int, map_index: int, seen: dict[str, str]) -> bool:
    """Whether day ``map_index`` passes the gate when it sees ``seen``."""
    try:
        operator(limit).wait_for_turn({"ti": StubTI(map_index, seen)})
    except AirflowRescheduleException:
        return False
    return True


@pytest.mark.parametrize("limit, expected", [(1, [True, False]), (2, [True, True])])
def test_two_days_starting_at_once_never_exceed_the_limit_and_never_both_back_off(limit, expected):
    seen = states("running", "running")  # both checking at the same moment: each sees the other running
    assert [goes(limit, 0, seen), goes(limit, 1, seen)] == expected


def test_a_day_waits_while_enough_earlier_days_are_unfinished():
    seen = states("running", "deferred", "scheduled", "running", "up_for_retry")
    assert not goes(3, 3, seen)  # days 0, 1 and 2 are ahead of it
    assert goes(4, 3, seen)
    assert not goes(4, 4, seen)  # a day waiting for its retry keeps its place
    for waiting in ("up_for_reschedule", "queued", "none", None):
        assert not goes(1, 1, states(waiting, "running")), waiting  # an earlier day waiting keeps its place


def test_finished_and_later_days_do_not_count():
    for done in FINISHED:
        assert goes(1, 3, states(done, done, done, "running", "running", "deferred")), done
    assert goes(1, 0, states("running", "running", "deferred", "running"))  # the first day always goes


def test_an_unreported_earlier_day_counts_as_unfinished():
    assert not goes(1, 2, {"label_day_0": "success", "label_day_2": "running"})


def wait_seconds(limit: int, map_index: int, seen: dict[str, str]) -> float:
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(AirflowRescheduleException) as waited:
        operator(limit).wait_for_turn({"ti": StubTI(map_index, seen)})
    return (waited.value.reschedule_date - before).total_seconds()


def test_the_wait_grows_with_the_place_in_line_behind_days_at_work():
    seen = states(*["running", "deferred", "up_for_reschedule"] * 7, "running")
    assert 3 <= wait_seconds(21, 21, seen) < 4  # next in line
    assert 20 <= wait_seconds(4, 21, seen) < 21  # 17 days further back
    assert 30 <= wait_seconds(1, 40, states(*["running"] * 40, "running")) < 31  # capped


def test_behind_a_day_about_to_start_the_wait_is_short():
    for starting in ("scheduled", "queued", "none", None):
        assert wait_seconds(1, 2, states("running", starting, "running")) < 2, starting


@pytest.mark.parametrize("together", [False, True], ids=["random-groups", "all-at-once"])
@pytest.mark.parametrize("seed", range(30))
def test_days_checking_together_never_exceed_the_limit_and_all_finish(seed, together):
    """A run's days, simulated: every tick, a group of the days not at work checks the gate at once (each
    sees the others of its group running): a random group, or every waiting day (the worst case); days at
    work finish, fail, or fail into a retry."""
    rng = random.Random(seed)
    n, limit = rng.randint(2, 12), rng.randint(1, 4)
    state = ["scheduled"] * n
    tries = [0] * n
    at_work: set[int] = set()
    for _tick in range(10 * n + 20):
        ready = [i for i in range(n) if state[i] in ("scheduled", "up_for_reschedule", "up_for_retry")]
        group = ready if together else rng.sample(ready, rng.randint(1, len(ready))) if ready else []
        for i in group:
            state[i] = "running"
        seen = states(*state)
        for i in group:  # all of the group check against the same moment
            if goes(limit, i, seen):
                at_work.add(i)
                tries[i] += 1
            else:
                state[i] = "up_for_reschedule"
        assert len(at_work) <= limit, (seed, state)
        for i in sorted(at_work):
            if rng.random() < 0.5:
                at_work.discard(i)
                roll = rng.random()
                if roll < 0.2 and tries[i] < 3:
                    state[i] = "up_for_retry"
                else:
                    state[i] = "failed" if roll < 0.3 else "success"
            else:
                state[i] = rng.choice(["running", "deferred"])
        if all(s in FINISHED for s in state):
            break
    assert all(s in FINISHED for s in state), f"days still waiting (seed {seed}, limit {limit}): {state}"


def test_inside_dag_test_the_days_run_one_at_a_time_so_none_waits(monkeypatch):
    """``airflow dags test`` runs the run's tasks one after another in its own process (in any order): a day
    there never waits (each wait costs an Airflow attempt); under any executor the gate applies."""
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    from label_backfill.operators import runs_one_task_at_a_time

    crowded = states(*["running"] * 5, "scheduled")
    assert not runs_one_task_at_a_time() and not goes(2, 5, crowded)
    comms = InProcessSupervisorComms.__new__(InProcessSupervisorComms)  # what dag.test() hands the runner
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    assert runs_one_task_at_a_time() and goes(2, 5, crowded)
