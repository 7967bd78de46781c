"""Every bound of the DAGs' params, defined once, and the conf checks that hold for every DAG of the package.

The trigger forms' ``Param`` schemas are built from these constants (``Bounds.param``, ``customer_param``)
and the Python checks read the same ones (``backfill.validate_params``, ``drift.lookback``); what a JSON
schema cannot say (end before today, the range against ``max_days``, the loss guard) is checked in Python only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from label_backfill.naming import CUSTOMER_ID_RE, InvalidInput


@dataclass(frozen=True)
class Bounds:
    """The inclusive range of an integer param."""

    low: int
    high: int

    def check(self, name: str, value: object) -> int:
        """``value`` if it is a whole number in range, else ``InvalidInput`` naming the param."""
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            raise InvalidInput(f"{name}: {value!r} must be a whole number from {self.low} to {self.high}")
        return value

    def param(self, default: int, *, title: str, description: str) -> Any:
        """The trigger form's ``Param`` of this range."""
        from airflow.sdk import Param

        return Param(
            default,
            type="integer",
            minimum=self.low,
            maximum=self.high,
            title=title,
            description=description,
        )


# conversation_labels_backfill
MAX_PARALLEL_DAYS_LIMIT = 16
MAX_DAYS_LIMIT = 366
MAX_DAYS_DEFAULT = 62
MAX_PARALLEL_DAYS = Bounds(1, MAX_PARALLEL_DAYS_LIMIT)
MAX_DAYS = Bounds(1, MAX_DAYS_LIMIT)
BACKFILL_SAMPLE_SIZE = Bounds(0, 1000)
MIN_DELETE_RATIO = 1
# Opt-in: the CLI, `make demo` and the drift check's repairs (which send no such key) never wait for a person.
REQUIRE_APPROVAL_DEFAULT = False

# conversation_labels_drift_check
LOOKBACK_DAYS = Bounds(1, 90)
# a triggered repair runs with the backfill's default max_days: a longer range would be refused
MAX_REPAIR_DAYS = Bounds(1, MAX_DAYS_DEFAULT)
DRIFT_SAMPLE_SIZE = Bounds(0, 200)


def customer_param(*, description: str) -> Any:
    """A required customer id, with the pattern ``naming.validate_customer_id`` checks."""
    from airflow.sdk import Param

    return Param(type="string", pattern=CUSTOMER_ID_RE.pattern, title="Customer", description=description)


def require_approval_param(*, description: str) -> Any:
    """The backfill's opt-in approval step, off by default (``REQUIRE_APPROVAL_DEFAULT``)."""
    from airflow.sdk import Param

    return Param(
        REQUIRE_APPROVAL_DEFAULT,
        type="boolean",
        title="Ask for approval before deleting",
        description=description,
    )


def refuse_unknown_keys(conf: Mapping[str, Any] | None, known: Iterable[str]) -> None:
    """Raise ``InvalidInput`` naming every conf key the DAG does not define, with the closest known key.

    A typo such as ``dryrun`` for ``dry_run`` would otherwise be ignored and the run would do the real thing.

    :param conf: the run's conf (``dag_run.conf``), as the user sent it.
    :param known: the DAG's param names.
    """
    known = sorted(known)
    unknown = sorted(set(conf or {}) - set(known))
    if not unknown:
        return
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise InvalidInput(
        f"unknown param {', '.join(named)}: refused before anything ran; this DAG takes {', '.join(known)}"
    )
