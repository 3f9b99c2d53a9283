"""The one definition of each clinical concept, and the choices made from it."""

from __future__ import annotations

from inference.models import Finding
from triage.models import Study
from triage.vocabulary import OrderPriority, PatientClass, Severity, choices


def test_labels_default_to_the_capitalised_value_unless_given() -> None:
    assert OrderPriority.STAT.label == "STAT"
    assert OrderPriority.URGENT.label == "Urgent"
    assert Severity.NON_URGENT.label == "Non-urgent"


def test_members_are_their_strings() -> None:
    assert PatientClass("emergency") is PatientClass.EMERGENCY
    assert f"{Severity.CRITICAL}" == "critical"


def test_model_fields_take_their_choices_from_the_vocabulary() -> None:
    fields = {
        Study._meta.get_field("patient_class"): PatientClass,
        Study._meta.get_field("order_priority"): OrderPriority,
        Finding._meta.get_field("severity"): Severity,
    }
    for field, enum in fields.items():
        assert field.choices == choices(enum)
