"""Worklist filters: modality, body part, patient class, AI flagged, status, mine."""

from __future__ import annotations

import django_filters
from django.core.validators import RegexValidator
from django.db.models import Q, QuerySet

from triage.models import Study
from triage.vocabulary import PatientClass, choices
from worklist.vocabulary import ReadingStatus

# DICOM code strings (Modality, BodyPartExamined): letters, digits, space, "_".
CODE_STRING = r"^[A-Za-z0-9 _]*$"
_CODE_STRING = RegexValidator(CODE_STRING, "letters, digits, spaces and _ only")


class StudyFilter(django_filters.FilterSet):  # type: ignore[misc]  # untyped
    modality = django_filters.CharFilter(
        method="filter_modality", max_length=16, validators=[_CODE_STRING]
    )
    body_part = django_filters.CharFilter(
        field_name="body_part_examined",
        lookup_expr="iexact",
        max_length=64,
        validators=[_CODE_STRING],
    )
    patient_class = django_filters.ChoiceFilter(choices=choices(PatientClass))
    # Final studies have left the worklist for good: not a status it lists.
    status = django_filters.ChoiceFilter(
        field_name="worklist_entry__reading_status",
        choices=[c for c in choices(ReadingStatus) if c[0] != ReadingStatus.FINAL],
    )
    ai_flagged = django_filters.BooleanFilter(method="filter_ai_flagged")
    mine = django_filters.BooleanFilter(method="filter_mine")

    class Meta:
        model = Study
        fields: tuple[str, ...] = ()

    def filter_modality(
        self, queryset: QuerySet[Study], name: str, value: str
    ) -> QuerySet[Study]:
        # ModalitiesInStudy is backslash-separated ("CT\\SR").
        value = value.upper()
        return queryset.filter(
            Q(modalities=value)
            | Q(modalities__startswith=value + "\\")
            | Q(modalities__endswith="\\" + value)
            | Q(modalities__contains="\\" + value + "\\")
        )

    def filter_ai_flagged(
        self, queryset: QuerySet[Study], name: str, value: bool | None
    ) -> QuerySet[Study]:
        if value is None:
            return queryset
        if value:
            return queryset.filter(worklist_entry__ai_flagged=True)
        return queryset.exclude(worklist_entry__ai_flagged=True)

    def filter_mine(
        self, queryset: QuerySet[Study], name: str, value: bool | None
    ) -> QuerySet[Study]:
        if not value:
            return queryset
        return queryset.filter(worklist_entry__claimed_by_id=self.request.user.pk)
