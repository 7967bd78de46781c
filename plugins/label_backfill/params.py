"""Every bound and default of the DAGs' params, defined once, the trigger forms' sections, and the conf checks
that hold for every DAG of the package.

The trigger forms' ``Param`` schemas are built here (``Bounds.param``, ``flag``, ``customer_param``) and the
Python checks read the same constants (``backfill.validate_params``, ``drift.check_params``).

How the Airflow 3.3 trigger form reads a schema, and what follows from it (from its source,
``airflow/ui/src/components/FlexibleForm``: ``isParamRequired.tsx``, ``FieldNumber.tsx``, ``FlexibleForm.tsx``):

- a field is marked *required* when its schema has a ``type`` that does not include ``"null"``: params
  with a default (booleans, numbers, the drift check's list) are typed ``[<type>, "null"]`` so they are
  not; an emptied one (null) means its default, exactly like a conf without the key;
- a number field passes the schema's ``minimum`` / ``maximum`` to its input, which clamps on blur (40
  became 16 for ``max_parallel_days``): the number params carry no bounds in their schema; the range is in
  their description and ``validate`` refuses a value outside it, naming the param and the range;
- a value failing the schema (e.g. a ``pattern``) is refused when the run is created with jsonschema's
  message, which dumps the whole schema (the regex): the customer id is checked by ``validate`` instead,
  before anything is read or deleted, with a message that says what a customer id looks like;
- params are grouped by ``section`` (one accordion item each, in order of first use); only the default
  section, ``Run Parameters``, is open when the form opens: the essentials go there, safety guards and
  tuning in their own sections, closed until needed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from label_backfill.naming import InvalidInput


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

    def param(self, default: int, *, title: str, description: str, section: str = "") -> Any:
        """The trigger form's ``Param`` of this range: not required (null = ``default``), no ``minimum`` /
        ``maximum`` in the schema (the form would clamp to them: ``validate`` refuses instead), the range
        and the default said in the description."""
        from airflow.sdk import Param

        return Param(
            default,
            type=["integer", "null"],
            title=title,
            description=f"{description} {self.low} to {self.high}; default {default}.",
            section=section or SECTION_TUNING,
        )


# The trigger forms' sections. ESSENTIALS is the name Airflow 3.3's form gives its default section, the only
# one open when the form opens (the others are closed accordion items).
SECTION_ESSENTIALS = "Run Parameters"
SECTION_GUARDS = "Safety guards"
SECTION_TUNING = "Tuning"

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

# conversation_labels_fleet_backfill: one mapped plan and repair task per customer-range, under Airflow's
# max_map_length (1024, core.max_map_length) with room for the run's other tasks
MAX_FLEET_REPAIRS = 1000
MAX_PARALLEL_CUSTOMERS_LIMIT = 32
MAX_PARALLEL_CUSTOMERS = Bounds(1, MAX_PARALLEL_CUSTOMERS_LIMIT)

# What an absent or emptied (null) param means.
BACKFILL_DEFAULTS: Mapping[str, Any] = {
    "dry_run": False,
    "max_parallel_days": 4,
    "max_days": MAX_DAYS_DEFAULT,
    "allow_empty_source": False,
    "max_delete_ratio": 2.0,
    "sample_size": 20,
    "require_approval": REQUIRE_APPROVAL_DEFAULT,
}
# The fleet hands these to every customer's backfill run (their meaning is the backfill's).
FLEET_CHILD_KEYS = ("max_days", "allow_empty_source", "max_delete_ratio", "max_parallel_days", "sample_size")
FLEET_DEFAULTS: Mapping[str, Any] = {
    "customers": [],
    "all_customers": False,
    "repairs": [],
    "start_date": None,
    "end_date": None,
    "dry_run": True,  # a fleet repair is big: the plan comes first, the repair is a deliberate second trigger
    "max_parallel_customers": 4,
    **{k: BACKFILL_DEFAULTS[k] for k in FLEET_CHILD_KEYS},
}
DRIFT_DEFAULTS: Mapping[str, Any] = {
    "customers": [],
    "lookback_days": 7,
    "auto_repair": False,
    "max_repair_days": 7,
    "sample_size": 10,
}


def with_defaults(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with every null (or absent) defaulted param replaced by its default."""
    out = dict(params)
    for name, default in defaults.items():
        if out.get(name) is None:
            out[name] = default
    return out


def flag(default: bool, *, title: str, description: str, section: str) -> Any:
    """A boolean ``Param``: a checkbox the form does not mark required (null = ``default``)."""
    from airflow.sdk import Param

    return Param(default, type=["boolean", "null"], title=title, description=description, section=section)


def customer_param(*, description: str) -> Any:
    """A required customer id. No ``pattern`` in the schema: ``naming.validate_customer_id`` checks it in
    ``validate`` with a human message (a schema failure would show jsonschema's dump of the regex)."""
    from airflow.sdk import Param

    return Param(type="string", title="Customer", description=description, section=SECTION_ESSENTIALS)


def require_approval_param(*, description: str) -> Any:
    """The backfill's opt-in approval step, off by default (``REQUIRE_APPROVAL_DEFAULT``): an essential."""
    return flag(
        REQUIRE_APPROVAL_DEFAULT,
        title="Ask for approval before deleting",
        description=description,
        section=SECTION_ESSENTIALS,
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
