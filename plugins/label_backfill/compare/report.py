"""What a comparison returns, and its renderings: JSON, a plain-text table and markdown."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

DAY_COLUMNS = (
    "pg_eligible",
    "ch_rows",
    "ch_distinct",
    "duplicates",
    "missing",
    "extra",
    "stale",
    "inconsistent",
)


@dataclass
class DayResult:
    """One UTC start day of one customer, Postgres (eligible) against ClickHouse (physical rows).

    ``inconsistent``: the day's aggregates (checksum or count) differed, yet its row-by-row comparison found
    no difference; the comparison contradicts itself (or the data changed while it ran): not ok.
    """

    date: dt.date
    pg_eligible: int = 0
    ch_rows: int = 0
    ch_distinct: int = 0
    duplicates: int = 0
    missing: int = 0
    extra: int = 0
    stale: int = 0
    inconsistent: bool = False
    sample: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_agree(self) -> bool:
        """What the row-by-row comparison says: equal counts and no kind of drift."""
        return self.pg_eligible == self.ch_rows == self.ch_distinct and not (
            self.duplicates or self.missing or self.extra or self.stale
        )

    @property
    def ok(self) -> bool:
        return self.rows_agree and not self.inconsistent

    @property
    def status(self) -> str:
        return "ok" if self.ok else "INCONSISTENT" if self.inconsistent else "DRIFT"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["date"] = self.date.isoformat()
        out["ok"] = self.ok
        return out


@dataclass
class Comparison:
    customer: str
    database: str
    first_day: dt.date
    last_day: dt.date
    days: list[DayResult]
    usecases: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0
    # Every missing and extra conversation id of the drifted days (not in the report: it can be large).
    drift_ids: dict[str, set[str]] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.days)

    @property
    def drifted_days(self) -> list[dt.date]:
        return [d.date for d in self.days if not d.ok]

    def total(self, column: str) -> int:
        return sum(getattr(d, column) for d in self.days)

    def to_dict(self) -> dict[str, Any]:
        return {
            "customer": self.customer,
            "database": self.database,
            "start_date": self.first_day.isoformat(),
            "end_date": self.last_day.isoformat(),
            "ok": self.ok,
            "drifted_days": [d.isoformat() for d in self.drifted_days],
            "totals": {c: self.total(c) for c in DAY_COLUMNS},
            "days": [d.to_dict() for d in self.days],
            "usecases": self.usecases,
            "seconds": round(self.seconds, 3),
        }

    def day_rows(self) -> list[list[str]]:
        rows = [
            [d.date.isoformat(), *(f"{getattr(d, c):,}" for c in DAY_COLUMNS), d.status] for d in self.days
        ]
        rows.append(["total", *(f"{self.total(c):,}" for c in DAY_COLUMNS), "ok" if self.ok else "DRIFT"])
        return rows

    def usecase_rows(self) -> list[list[str]]:
        rows = []
        for usecase, counts in sorted(self.usecases.items(), key=lambda kv: -kv[1].get("postgres", 0)):
            pg, ch = counts.get("postgres", 0), counts.get("clickhouse", 0)
            ratio = f"{ch / pg:.2f}x" if pg else "-"
            rows.append([usecase, f"{pg:,}", f"{ch:,}", ratio])
        return rows

    def inconsistency_note(self) -> list[str]:
        days = [d.date.isoformat() for d in self.days if d.inconsistent]
        if not days:
            return []
        return [
            "",
            f"INCONSISTENT on {', '.join(days)}: the aggregates (checksum or count) differ but no row does. "
            "The fingerprint and the row comparison disagree (a comparison bug), or the data changed while "
            "the comparison ran; not clean.",
        ]

    def render_text(self) -> str:
        title = f"{self.customer} ({self.database}) {self.first_day}..{self.last_day}"
        return "\n".join(
            [
                title,
                text_table(["day", *DAY_COLUMNS, "status"], self.day_rows()),
                *self.inconsistency_note(),
                "",
                text_table(["usecase", "postgres", "clickhouse", "ratio"], self.usecase_rows()),
            ]
        )

    def render_markdown(self) -> str:
        lines = [
            markdown_table(["day", *DAY_COLUMNS, "status"], self.day_rows()),
            *self.inconsistency_note(),
            "",
            markdown_table(["usecase", "postgres", "clickhouse", "ratio"], self.usecase_rows()),
        ]
        samples = [(d.date, s) for d in self.days for s in d.sample]
        if samples:
            lines += ["", "Drifted conversations (sample):", ""]
            rows = [
                [
                    day.isoformat(),
                    s["conversation_id"],
                    ",".join(s["kinds"]),
                    _labels(s.get("postgres")),
                    "; ".join(_labels(r) for r in s.get("clickhouse", [])) or "-",
                ]
                for day, s in samples
            ]
            lines.append(markdown_table(["day", "conversation", "kind", "postgres", "clickhouse"], rows))
        return "\n".join(lines)


def _labels(side: dict[str, Any] | None) -> str:
    if not side:
        return "-"
    text = f"{side['agent_user_id']}/{side['usecase_id']}/{side['source']}"
    if side.get("eligible") is False:
        text += " (not eligible)"
    return text


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    fmt = "  ".join(f"{{:>{w}}}" if i else f"{{:<{w}}}" for i, w in enumerate(widths))
    return "\n".join(
        [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
    )


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)
