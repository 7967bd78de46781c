"""The max_parallel_days gate: a day starts only while fewer than that many other days are working."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowRescheduleException
from label_backfill.operators import DayRewriteOperator

pytestmark = pytest.mark.unit


class StubTI:
    """Just the task-instance calls the gate makes (the run's sibling states)."""

    dag_id, task_id, run_id = "conversation_labels_backfill", "label_day", "manual__1"

    def __init__(self, map_index: int, states: dict[str, str]) -> None:
        self.map_index, self.states = map_index, states

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert (dag_id, task_ids, run_ids) == (self.dag_id, [self.task_id], [self.run_id])
        return {self.run_id: self.states}


def operator(max_parallel_days: int) -> DayRewriteOperator:
    return DayRewriteOperator(
        task_id="label_day",
        customer="alaska-air",
        database="alaska_air_us_east_1",
        day="2026-02-03",
        max_parallel_days=max_parallel_days,
    )


def states(**by_index: str) -> dict[str, str]:
    return {f"label_day_{i.lstrip('d')}": s for i, s in by_index.items()}


def test_waits_when_enough_other_days_are_working():
    ti = StubTI(3, states(d0="running", d1="deferred", d2="success", d3="running", d4="scheduled"))
    with pytest.raises(AirflowRescheduleException):
        operator(2).wait_for_turn({"ti": ti})
    operator(3).wait_for_turn({"ti": ti})  # room for a third


def test_waiting_or_finished_days_do_not_count_and_order_does_not_matter():
    ti = StubTI(0, states(d0="running", d1="up_for_reschedule", d2="failed", d3="scheduled", d4="running"))
    operator(2).wait_for_turn({"ti": ti})  # only d4 works besides me
    with pytest.raises(AirflowRescheduleException):
        operator(1).wait_for_turn({"ti": ti})
