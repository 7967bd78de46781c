"""Customer ids, ClickHouse identifiers and UTC day ranges: validated before anything touches a database."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

CUSTOMER_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
REGION_RE = CUSTOMER_ID_RE
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class InvalidInput(ValueError):
    """A parameter that must be rejected before any delete; the message names the parameter."""


def validate_customer_id(customer_id: object, param: str = "customer") -> str:
    """Return ``customer_id`` if it is a well-formed profile id (lowercase letters, digits, dashes)."""
    if not isinstance(customer_id, str) or not CUSTOMER_ID_RE.fullmatch(customer_id):
        hint = ""
        if isinstance(customer_id, str):
            guess = re.sub(r"[\s_]+", "-", customer_id.strip().lower())
            if guess != customer_id and CUSTOMER_ID_RE.fullmatch(guess):
                hint = f"; did you mean {guess!r}?"
        raise InvalidInput(
            f"{param}: {customer_id!r} is not a customer id (lowercase letters, digits and '-', "
            f"starting and ending with a letter or digit, at most 63 characters, e.g. alaska-air){hint}"
        )
    return customer_id


def validate_identifier(name: object, what: str = "identifier") -> str:
    """Return ``name`` if it is safe to splice into SQL as a ClickHouse identifier."""
    if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
        raise InvalidInput(f"{what}: {name!r} is not a valid ClickHouse identifier")
    return name


def database_name(customer_id: str, region: str) -> str:
    """ClickHouse database of a customer: ``alaska-air`` + ``us-east-1`` -> ``alaska_air_us_east_1``."""
    validate_customer_id(customer_id)
    validate_customer_id(region, param="region")
    return validate_identifier(f"{customer_id}_{region}".replace("-", "_"), "database")


@dataclass(frozen=True)
class DayRange:
    """Inclusive UTC calendar days ``first``..``last`` of conversation start."""

    first: dt.date
    last: dt.date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise InvalidInput(f"end_date: {self.last} is before start_date {self.first}")

    @property
    def start(self) -> dt.datetime:
        """Start of the range (inclusive), midnight UTC of ``first``."""
        return utc_midnight(self.first)

    @property
    def end(self) -> dt.datetime:
        """End of the range (exclusive), midnight UTC after ``last``."""
        return utc_midnight(self.last + dt.timedelta(days=1))

    @property
    def days(self) -> list[dt.date]:
        return [self.first + dt.timedelta(days=i) for i in range((self.last - self.first).days + 1)]

    def __len__(self) -> int:
        return (self.last - self.first).days + 1

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


def utc_midnight(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def parse_day(value: object, param: str) -> dt.date:
    """Parse a ``YYYY-MM-DD`` parameter, naming ``param`` in the error."""
    if isinstance(value, dt.datetime):
        raise InvalidInput(f"{param}: expected a date YYYY-MM-DD, got a datetime {value!r}")
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise InvalidInput(f"{param}: {value!r} is not a date in the form YYYY-MM-DD")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as err:
        raise InvalidInput(f"{param}: {value!r} is not a calendar date ({err})") from None


def contiguous_ranges(days: list[dt.date]) -> list[DayRange]:
    """Group sorted-or-not days into maximal runs of consecutive days."""
    ranges: list[DayRange] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1].last + dt.timedelta(days=1):
            ranges[-1] = DayRange(ranges[-1].first, day)
        else:
            ranges.append(DayRange(day, day))
    return ranges
