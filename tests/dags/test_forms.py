"""The trigger forms, read the way Airflow 3.3's form reads them (airflow/ui/src/components/FlexibleForm):
what it marks required, what its number inputs clamp to, how it groups fields, what it shows next to them."""

from __future__ import annotations

import pytest
from label_backfill.params import SECTION_ESSENTIALS, SECTION_GUARDS, SECTION_TUNING

from tests.helpers import load_dag

pytestmark = pytest.mark.dag

BACKFILL, DRIFT = "conversation_labels_backfill", "conversation_labels_drift_check"
# schema keys the form turns into clamping (number inputs) or a failure showing jsonschema's dump
NO_FORM_CHECKS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "pattern", "minLength"}


def ui_required(schema: dict) -> bool:
    """isParamRequired.tsx: required when the schema has a type and that type does not include "null"."""
    kind = schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def form(dag_id: str) -> dict:
    params = load_dag(dag_id).params
    return {name: params.get_param(name) for name in params.keys()}


@pytest.mark.parametrize("dag_id", [BACKFILL, DRIFT])
def test_only_params_without_a_default_are_required(dag_id):
    fields = form(dag_id)
    required = {name for name, p in fields.items() if ui_required(p.schema)}
    assert required == {name for name, p in fields.items() if not p.has_value}
    assert required == ({"customer", "start_date", "end_date"} if dag_id == BACKFILL else set())


@pytest.mark.parametrize("dag_id", [BACKFILL, DRIFT])
def test_no_field_is_clamped_or_checked_by_a_schema_dump(dag_id):
    for name, param in form(dag_id).items():
        assert not NO_FORM_CHECKS & set(param.schema), name
        assert param.description and param.schema.get("title"), name  # said next to the field


def test_backfill_essentials_are_apart_from_guards_and_tuning():
    sections = {name: p.schema.get("section") for name, p in form(BACKFILL).items()}
    assert set(sections.values()) == {SECTION_ESSENTIALS, SECTION_GUARDS, SECTION_TUNING}
    assert {"customer", "start_date", "end_date", "dry_run"} <= {
        n for n, s in sections.items() if s == SECTION_ESSENTIALS
    }
    assert {n for n, s in sections.items() if s == SECTION_GUARDS} == {
        "max_days",
        "allow_empty_source",
        "max_delete_ratio",
    }
    assert {n for n, s in sections.items() if s == SECTION_TUNING} == {"max_parallel_days", "sample_size"}
    assert next(iter(sections.values())) == SECTION_ESSENTIALS  # the first section shown


def test_drift_sections():
    sections = {name: p.schema.get("section") for name, p in form(DRIFT).items()}
    assert sections == {
        "customers": SECTION_ESSENTIALS,
        "lookback_days": SECTION_ESSENTIALS,
        "auto_repair": SECTION_ESSENTIALS,
        "max_repair_days": SECTION_GUARDS,
        "sample_size": SECTION_TUNING,
    }


def test_date_fields_say_what_they_mean_next_to_the_picker():
    fields = form(BACKFILL)
    for name in ("start_date", "end_date"):
        assert fields[name].schema["format"] == "date"  # the form shows a date picker
        assert fields[name].description.startswith("UTC day of conversation start, inclusive")
        assert "(UTC, inclusive)" in fields[name].schema["title"]


def test_the_drift_form_explains_how_its_window_is_chosen():
    text = form(DRIFT)["lookback_days"].description
    assert "ending the day before the run's logical date" in text and "2026-02-08..2026-02-14" in text


@pytest.mark.parametrize("dag_id", [BACKFILL, DRIFT])
def test_doc_md_carries_the_essentials_itself(dag_id):
    """The UI shows doc_md but cannot open README.md: no pointer to it, the essentials are there."""
    doc = load_dag(dag_id).doc_md
    assert "README" not in doc
    expected = (
        ["inclusive", "Dry run", "REFUSED", "NOT EXACT", "Clear", "downstream", "LABEL_BACKFILL_REPORT_DIR"]
        if dag_id == BACKFILL
        else ["day **before** the", "logical date", "no_data", "Auto repair", "LABEL_BACKFILL_REPORT_DIR"]
    )
    assert all(e in doc for e in expected), [e for e in expected if e not in doc]
