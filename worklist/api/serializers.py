"""What the worklist API shows of a study, and what it accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inference.vocabulary import AIStatus
from triage.models import Study
from triage.vocabulary import PatientClass, choices
from worklist.models import FeedbackVerdict, WorklistFilter
from worklist.vocabulary import ReadingStatus


class PriorityComponentSerializer(serializers.Serializer[dict[str, Any]]):
    code = serializers.CharField()
    points = serializers.FloatField()
    reason = serializers.CharField()


_DATETIME = serializers.DateTimeField()


def _iso(value: datetime | None) -> str | None:
    """As DRF writes datetimes (ISO 8601 in the current time zone)."""
    return None if value is None else _DATETIME.to_representation(value)


@extend_schema_field(PriorityComponentSerializer(many=True))
class ComponentsField(serializers.JSONField):
    """The priority components: code, points and reason of each."""


class StudySerializer(serializers.ModelSerializer[Study]):
    """A worklist row without patient identifiers."""

    # The worklist's state of the study (its WorklistEntry).
    version = serializers.IntegerField(source="worklist_entry.version", read_only=True)
    priority_score = serializers.FloatField(
        source="worklist_entry.priority_score", read_only=True
    )
    # Stored as the engine wrote it: passed through, not re-validated per row.
    priority_components = ComponentsField(
        source="worklist_entry.priority_components", read_only=True
    )
    reading_status = serializers.ChoiceField(
        choices=choices(ReadingStatus),
        source="worklist_entry.reading_status",
        read_only=True,
    )
    claimed_by = serializers.CharField(
        source="worklist_entry.claimed_by.username", read_only=True, allow_null=True
    )
    claimed_at = serializers.DateTimeField(
        source="worklist_entry.claimed_at", read_only=True, allow_null=True
    )
    first_opened_at = serializers.DateTimeField(
        source="worklist_entry.first_opened_at", read_only=True, allow_null=True
    )
    preliminary_at = serializers.DateTimeField(
        source="worklist_entry.preliminary_at", read_only=True, allow_null=True
    )
    finalized_at = serializers.DateTimeField(
        source="worklist_entry.finalized_at", read_only=True, allow_null=True
    )
    ai_flagged = serializers.BooleanField(
        source="worklist_entry.ai_flagged", read_only=True, default=False
    )
    # The scoring layer's state of the study (its StudyScoring).
    ai_status = serializers.ChoiceField(
        choices=choices(AIStatus), source="scoring.ai_status", read_only=True
    )
    ai_status_reason = serializers.CharField(
        source="scoring.ai_status_reason", read_only=True
    )
    viewer_url = serializers.SerializerMethodField()

    class Meta:
        model = Study
        fields: tuple[str, ...] = (
            "id",
            "version",
            "priority_score",
            "priority_components",
            "ai_flagged",
            "patient_class",
            "order_priority",
            "modalities",
            "body_part_examined",
            "study_description",
            "ai_status",
            "ai_status_reason",
            "reading_status",
            "claimed_by",
            "claimed_at",
            "acquired_at",
            "first_instance_received_at",
            "first_opened_at",
            "preliminary_at",
            "finalized_at",
            "viewer_url",
        )
        read_only_fields: tuple[str, ...] = fields

    def get_viewer_url(self, study: Study) -> str:
        template: str = settings.RADTRIAGE_VIEWER_URL_TEMPLATE
        return template.format(
            study_instance_uid=study.study_instance_uid,
            accession_number=study.accession_number,
            study_id=study.pk,
        )

    def to_representation(self, instance: Study) -> dict[str, Any]:
        # The list's hot path: built directly, the declared fields above give the
        # schema. A page of 50 rows costs about a fifth of DRF's field walk.
        entry, scoring = instance.worklist_entry, instance.scoring
        return {
            "id": instance.pk,
            "version": entry.version,
            "priority_score": entry.priority_score,
            "priority_components": entry.priority_components,
            "ai_flagged": entry.ai_flagged,
            "patient_class": instance.patient_class,
            "order_priority": instance.order_priority,
            "modalities": instance.modalities,
            "body_part_examined": instance.body_part_examined,
            "study_description": instance.study_description,
            "ai_status": scoring.ai_status,
            "ai_status_reason": scoring.ai_status_reason,
            "reading_status": entry.reading_status,
            "claimed_by": entry.claimed_by.username if entry.claimed_by else None,
            "claimed_at": _iso(entry.claimed_at),
            "acquired_at": _iso(instance.acquired_at),
            "first_instance_received_at": _iso(instance.first_instance_received_at),
            "first_opened_at": _iso(entry.first_opened_at),
            "preliminary_at": _iso(entry.preliminary_at),
            "finalized_at": _iso(entry.finalized_at),
            "viewer_url": self.get_viewer_url(instance),
        }


class StudyWithPatientSerializer(StudySerializer):
    """A worklist row for readers allowed to see patient identifiers."""

    patient_name = serializers.CharField(source="patient.patient_name", read_only=True)
    patient_id = serializers.CharField(source="patient.patient_id", read_only=True)

    class Meta(StudySerializer.Meta):
        fields = (
            *StudySerializer.Meta.fields,
            "patient_name",
            "patient_id",
            "accession_number",
        )
        read_only_fields = fields

    def to_representation(self, instance: Study) -> dict[str, Any]:
        row = super().to_representation(instance)
        row["patient_name"] = instance.patient.patient_name
        row["patient_id"] = instance.patient.patient_id
        row["accession_number"] = instance.accession_number
        return row


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF would take 42 as "42"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    """A string matching the pattern, never a number made into one."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not DRF's 0, 1, "yes" or "on" (JSON has booleans)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class FeedbackSerializer(serializers.Serializer[dict[str, Any]]):
    # A model's finding code, as in its manifest ("ich").
    finding_code = StrictRegexField(r"^[A-Za-z0-9_.-]{1,64}$", max_length=64)
    verdict = serializers.ChoiceField(choices=FeedbackVerdict.choices)
    comment = StrictCharField(
        max_length=2000, required=False, allow_blank=True, default=""
    )


class OpenedSerializer(serializers.Serializer[dict[str, Any]]):
    viewer_url = serializers.CharField()


# DICOM code strings: letters, digits, space and underscore ("" is its own
# choice, "any", so the pattern needs one character: the schema's oneOf).
CODE_STRING = r"^[A-Za-z0-9 _]+$"


class WorklistFilterSerializer(serializers.ModelSerializer[WorklistFilter]):
    modality = StrictRegexField(
        CODE_STRING, max_length=16, required=False, allow_blank=True
    )
    body_part = StrictRegexField(
        CODE_STRING, max_length=64, required=False, allow_blank=True
    )
    ai_flagged = StrictBooleanField(required=False, allow_null=True)
    mine = StrictBooleanField(required=False)
    # Saved filters are applied to every later list: only real choices.
    patient_class = serializers.ChoiceField(
        choices=choices(PatientClass), required=False, allow_blank=True
    )
    reading_status = serializers.ChoiceField(
        choices=choices(ReadingStatus), required=False, allow_blank=True
    )

    class Meta:
        model = WorklistFilter
        fields = WorklistFilter.FILTERS
