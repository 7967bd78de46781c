"""The simulator's scales: the fleet scale's customers for the fleet benchmarks, the others unchanged."""

from __future__ import annotations

import datetime as dt

import pytest
from label_backfill.dev.simulate import SCALES, fleet_scale, main, scale_of
from label_backfill.naming import database_name

pytestmark = pytest.mark.unit


def test_the_fleet_scale_makes_as_many_distinct_small_customers_as_asked():
    scale = scale_of("fleet", 88)
    names = [c for c, _ in scale.customers]
    assert len(set(names)) == 88 and names[:2] == ["fleet-000", "fleet-001"]
    assert len({database_name(c, r) for c, r in scale.customers}) == 88  # one ClickHouse database each
    assert (scale.days.first, scale.days.last) == (dt.date(2026, 2, 1), dt.date(2026, 2, 14))
    assert scale.per_day < SCALES["small"].per_day and not scale.cron
    assert len(scale_of("fleet").customers) == 10


def test_the_other_scales_are_unchanged_and_take_no_customer_count(capsys):
    assert scale_of("small") is SCALES["small"] and SCALES["small"].cron
    assert [c for c, _ in SCALES["small"].customers] == ["alaska-air", "horizon-air", "sun-country"]
    with pytest.raises(ValueError, match="fleet scale only"):
        scale_of("small", 5)
    with pytest.raises(ValueError, match="at least one customer"):
        fleet_scale(0)
    with pytest.raises(SystemExit):  # refused before anything is started or written
        main(["--scale", "alaska", "--customers", "3"])
    assert "--customers applies to the fleet scale only" in capsys.readouterr().err
