"""Postgres-vs-ClickHouse comparison: dialects (one per engine), the per-day algorithm, the report."""

from label_backfill.compare.dialects import CheckedSide, ClickHouseSide, ComparisonSide, PostgresSide
from label_backfill.compare.diff import compare
from label_backfill.compare.report import Comparison, DayResult

__all__ = [
    "CheckedSide",
    "ClickHouseSide",
    "Comparison",
    "ComparisonSide",
    "DayResult",
    "PostgresSide",
    "compare",
]
