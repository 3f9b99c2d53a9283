"""The clinical vocabulary shared by every layer: one enum per concept.

Plain Python (no Django), so the clinical core (the priority engine, manifests,
TAT maths) and the models' ``choices`` use the same members. A member's label is
what a reader sees; ``choices`` turns an enum into Django's choices list.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self


class LabelledEnum(StrEnum):
    """A string enum whose members carry a label for people.

    A member is ``NAME = "value"`` (the label is the value, capitalised) or
    ``NAME = "value", "Label"``.
    """

    label: str

    def __new__(cls, value: str, label: str | None = None) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label or value.replace("_", " ").capitalize()
        return member


def choices(enum: type[LabelledEnum]) -> list[tuple[str, str]]:
    """``enum`` as a Django ``choices`` list of (value, label)."""
    return [(member.value, member.label) for member in enum]


class OrderPriority(LabelledEnum):
    """How urgently the study was ordered."""

    STAT = "stat", "STAT"
    URGENT = "urgent"
    ROUTINE = "routine"


class PatientClass(LabelledEnum):
    """Where the patient is: emergency department, ward, clinic."""

    EMERGENCY = "emergency"
    INPATIENT = "inpatient"
    OUTPATIENT = "outpatient"
    UNKNOWN = "unknown"


class Severity(LabelledEnum):
    """Clinical severity of an AI finding when positive."""

    CRITICAL = "critical"
    URGENT = "urgent"
    NON_URGENT = "non-urgent"


class ReportStatus(LabelledEnum):
    """Where a study's report stands in the RIS (HL7 OBR-25: P, F, C)."""

    PRELIMINARY = "preliminary"
    FINAL = "final"
    CORRECTED = "corrected"


class IntakeSource(LabelledEnum):
    """How an order or a report reached RadTriage."""

    HL7 = "hl7", "HL7 v2"
    API = "api", "REST API"
    FHIR = "fhir", "FHIR"


class OrderStatus(LabelledEnum):
    """Where an order stands: expected, imaged, cancelled or reported."""

    SCHEDULED = "scheduled"
    # The study's images have arrived and met the order.
    IN_PROGRESS = "in_progress", "In progress"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
