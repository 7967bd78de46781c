"""Conf checks shared by both DAGs."""

from __future__ import annotations

import pytest
from label_backfill.naming import InvalidInput
from label_backfill.params import refuse_unknown_keys

pytestmark = pytest.mark.unit

KNOWN = ["customer", "start_date", "end_date", "dry_run", "max_days"]


def test_known_keys_pass():
    refuse_unknown_keys({"customer": "a", "dry_run": True}, KNOWN)
    refuse_unknown_keys({}, KNOWN)
    refuse_unknown_keys(None, KNOWN)


def test_a_typo_is_refused_naming_the_key_and_the_closest_known_one():
    with pytest.raises(InvalidInput, match=r"unknown param 'dryrun' \(did you mean 'dry_run'\?\)"):
        refuse_unknown_keys({"customer": "a", "dryrun": True}, KNOWN)


def test_every_unknown_key_is_named():
    with pytest.raises(InvalidInput) as err:
        refuse_unknown_keys({"zzz": 1, "customers": ["a"]}, KNOWN)
    assert "'customers' (did you mean 'customer'?)" in str(err.value) and "'zzz'" in str(err.value)


def test_a_bound_is_said_in_the_form_and_checked_in_python_never_clamped():
    from label_backfill.params import MAX_DAYS, MAX_DAYS_LIMIT

    param = MAX_DAYS.param(62, title="Maximum range", description="Refuse longer ranges.")
    # no minimum/maximum: the trigger form's number input would clamp to them instead of refusing
    assert param.schema["type"] == ["integer", "null"] and not {"minimum", "maximum"} & set(param.schema)
    assert param.description == f"Refuse longer ranges. 1 to {MAX_DAYS_LIMIT}; default 62."
    assert MAX_DAYS.check("max_days", MAX_DAYS_LIMIT) == MAX_DAYS_LIMIT
    for bad in (0, MAX_DAYS_LIMIT + 1, True, 3.0, "7", None):
        with pytest.raises(
            InvalidInput, match=rf"^max_days: .* must be a whole number from 1 to {MAX_DAYS_LIMIT}$"
        ):
            MAX_DAYS.check("max_days", bad)
