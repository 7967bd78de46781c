"""Postgres-vs-ClickHouse comparison: dialects (one per engine), the per-day algorithm, the report."""

from label_backfill.compare.dialects import ClickHouseSide, PostgresSide
from label_backfill.compare.diff import compare
from label_backfill.compare.report import Comparison, DayResult

__all__ = ["ClickHouseSide", "Comparison", "DayResult", "PostgresSide", "compare"]
