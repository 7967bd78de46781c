"""The incident simulator yields every kind of drift, deterministically for a seed."""

from __future__ import annotations

import pytest
from label_backfill.compare import ClickHouseSide, PostgresSide, compare
from label_backfill.dev.simulate import SCALES, simulate

pytestmark = pytest.mark.integration


def test_simulated_incident_has_duplicates_stale_missing_and_extra(pg, ch):
    incident = simulate(pg, ch, scale_name="small", seed=11)
    days = SCALES["small"].days
    result = compare(
        PostgresSide(pg), ClickHouseSide(ch, "alaska_air_us_east_1"), "alaska-air", days, sample_size=0
    )
    rerun = next(d for d in result.days if d.date == incident.rerun_day)
    assert rerun.duplicates > rerun.pg_eligible * 0.5  # the seeds' re-run without delete doubled most rows
    assert sum(d.duplicates for d in result.days if d.date != incident.rerun_day) == 0
    assert result.total("stale") > 1000 and result.total("missing") > 0 and result.total("extra") > 0
    uc = result.usecases["reservations-chat"]
    assert uc["clickhouse"] > uc["postgres"] * 1.2  # stale usecases, as in the seeds
    assert (
        incident.changes["agent re-assignments"] > 0
        and incident.changes["agents later flagged as dev users"] > 0
    )

    again = simulate(pg, ch, scale_name="small", seed=11)
    assert again.changes == incident.changes and again.labeled_rows == incident.labeled_rows
    replay = compare(
        PostgresSide(pg), ClickHouseSide(ch, "alaska_air_us_east_1"), "alaska-air", days, sample_size=0
    )
    assert [(d.pg_eligible, d.stale, d.missing, d.extra) for d in replay.days] == [
        (d.pg_eligible, d.stale, d.missing, d.extra) for d in result.days
    ]
    other = simulate(pg, ch, scale_name="small", seed=12)
    assert other.changes != incident.changes
