"""What ``POST /api/orders/`` accepts and answers: an order as JSON."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from triage.ingest.header import is_valid_uid
from triage.order_details import (
    HL7_PATIENT_CLASSES,
    ORDER_PRIORITY_CODES,
    OrderDetails,
    PatientDetails,
    order_priority_from_code,
    patient_class_from_code,
)
from triage.vocabulary import OrderPriority, OrderStatus, PatientClass

#: RadTriage's patient classes by name.
PATIENT_CLASSES = tuple(c.value for c in PatientClass)


class _StrictSerializer(serializers.Serializer[dict[str, Any]]):
    """Refuses fields it does not know, so a misspelt one is not lost quietly."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["unknown field"] for name in unknown[:20]}
                )
        validated: dict[str, Any] = super().to_internal_value(data)
        return validated


def _text(max_length: int, **options: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=max_length, required=False, allow_blank=True, default="", **options
    )


class PatientSerializer(_StrictSerializer):
    """The patient an order is for (HL7 PID)."""

    patient_id = serializers.CharField(max_length=64)
    issuer_of_patient_id = _text(64)
    patient_name = _text(324, help_text='DICOM PN form: "FAMILY^GIVEN"')
    birth_date = serializers.DateField(required=False, allow_null=True, default=None)
    sex = serializers.ChoiceField(
        choices=["F", "M", "O", ""], required=False, allow_blank=True, default=""
    )


class OrderSerializer(_StrictSerializer):
    """One imaging order; the same fields as an HL7 ORM^O01 / OMI^O23 carries."""

    accession_number = serializers.CharField(max_length=64)
    study_instance_uid = _text(64)
    placer_order_number = _text(64)
    filler_order_number = _text(64)
    patient = PatientSerializer()
    patient_class = serializers.CharField(
        max_length=16,
        required=False,
        default=PatientClass.UNKNOWN.value,
        help_text="emergency, inpatient, outpatient or unknown; or an HL7 PV1-2 "
        "code (E, I, O, P, R, B...)",
    )
    order_priority = serializers.CharField(
        max_length=16,
        required=False,
        default=OrderPriority.ROUTINE.value,
        help_text="stat, urgent or routine; or an HL7 (S, A, R, P, T, C) or FHIR "
        "(asap) code",
    )
    assigned_location = _text(128)
    procedure_code = _text(64)
    procedure_text = _text(256)
    reason_for_study = _text(2000)
    ordering_provider = _text(256)
    callback_number = _text(64)
    ordered_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None
    )
    cancelled = serializers.BooleanField(required=False, default=False)
    cancel_reason = _text(256)

    def validate_patient_class(self, value: str) -> str:
        if (
            value.strip().upper() not in HL7_PATIENT_CLASSES
            and value.strip().lower() not in PATIENT_CLASSES
        ):
            raise serializers.ValidationError(
                f"expected one of {', '.join(PATIENT_CLASSES)} or an HL7 PV1-2 code"
            )
        return value

    def validate_order_priority(self, value: str) -> str:
        if value.strip().upper() not in ORDER_PRIORITY_CODES:
            raise serializers.ValidationError(
                "expected stat, urgent, routine or an HL7 or FHIR priority code"
            )
        return value

    def validate_study_instance_uid(self, value: str) -> str:
        if value and not is_valid_uid(value):
            raise serializers.ValidationError("not a valid DICOM UID")
        return value

    def validate_accession_number(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def details(self) -> OrderDetails:
        """The validated order as the service takes it."""
        data = self.validated_data
        patient = data["patient"]
        return OrderDetails(
            accession_number=data["accession_number"],
            patient=PatientDetails(
                patient_id=patient["patient_id"],
                issuer_of_patient_id=patient["issuer_of_patient_id"],
                patient_name=patient["patient_name"],
                birth_date=patient["birth_date"],
                sex=patient["sex"],
            ),
            patient_class=patient_class_from_code(data["patient_class"]),
            order_priority=order_priority_from_code(data["order_priority"]),
            study_instance_uid=data["study_instance_uid"],
            placer_order_number=data["placer_order_number"],
            filler_order_number=data["filler_order_number"],
            assigned_location=data["assigned_location"],
            procedure_code=data["procedure_code"],
            procedure_text=data["procedure_text"],
            reason_for_study=data["reason_for_study"],
            ordering_provider=data["ordering_provider"],
            callback_number=data["callback_number"],
            ordered_at=data["ordered_at"],
            cancelled=data["cancelled"],
            cancel_reason=data["cancel_reason"],
        )


class OrderOutcomeSerializer(serializers.Serializer[dict[str, Any]]):
    """What became of a posted order."""

    id = serializers.IntegerField(help_text="the order's ID")
    status = serializers.ChoiceField(choices=[s.value for s in OrderStatus])
    study_id = serializers.IntegerField(
        allow_null=True, help_text="the study it met; null while images are to come"
    )
    changed = serializers.BooleanField(help_text="false: the same order again")
