"""The report filter form: a date range and optional narrowing filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.models import User

from triage.roles import Role
from triage.vocabulary import OrderPriority, PatientClass, choices
from worklist.reports.turnaround import TurnaroundFilters

DEFAULT_DAYS = 30
MAX_DAYS = 400
MODALITIES = ("CT", "MR", "CR", "DX", "US", "MG", "NM", "PT", "XA", "RF")


# The reports cover the department's working life; outside this, date arithmetic
# (the day after the end) overflows, and no study was acquired there anyway.
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2999, 12, 31)


class ReportDateField(forms.DateField):
    """A date within the span any report can cover (EARLIEST to LATEST)."""

    widget = forms.DateInput(attrs={"type": "date"})

    def validate(self, value: Any) -> None:
        super().validate(value)
        if value is not None and not EARLIEST <= value <= LATEST:
            raise forms.ValidationError(
                f"Choose a date between {EARLIEST.isoformat()} and "
                f"{LATEST.isoformat()}."
            )


class RadiologistChoiceField(forms.ModelChoiceField[User]):
    def label_from_instance(self, obj: User) -> str:
        return obj.get_username()


class TurnaroundForm(forms.Form):
    start = ReportDateField()
    end = ReportDateField()
    modality = forms.ChoiceField(
        required=False, choices=[("", "Any"), *((m, m) for m in MODALITIES)]
    )
    patient_class = forms.ChoiceField(
        required=False, choices=[("", "Any"), *choices(PatientClass)]
    )
    order_priority = forms.ChoiceField(
        required=False, choices=[("", "Any"), *choices(OrderPriority)]
    )
    ai_flagged = forms.ChoiceField(
        label="AI flagged",
        required=False,
        choices=[("", "Any"), ("yes", "Flagged"), ("no", "Not flagged")],
    )
    radiologist = RadiologistChoiceField(
        required=False,
        queryset=User.objects.filter(groups__name=Role.RADIOLOGIST).order_by(
            "username"
        ),
        empty_label="Any",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if start > end:
                raise forms.ValidationError("The start date is after the end date.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {MAX_DAYS} days.")
        return data

    def filters(self) -> TurnaroundFilters:
        """The validated filters (call after is_valid())."""
        data = self.cleaned_data
        radiologist = data.get("radiologist")
        return TurnaroundFilters(
            start=data["start"],
            end=data["end"],
            modality=data.get("modality") or "",
            patient_class=data.get("patient_class") or "",
            order_priority=data.get("order_priority") or "",
            radiologist_id=radiologist.pk if radiologist is not None else None,
            ai_flagged={"yes": True, "no": False}.get(data.get("ai_flagged") or ""),
        )


def turnaround_form(params: Any, today: dt.date) -> TurnaroundForm:
    """Bind the query string; the last 30 days up to today where no range given."""
    data = params.copy()
    data.setdefault("end", today.isoformat())
    data.setdefault("start", (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    return TurnaroundForm(data)


class AiForm(forms.Form):
    start = ReportDateField()
    end = ReportDateField()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data


def ai_form(params: Any, today: dt.date) -> AiForm:
    """Bind the query string; the last 30 days up to today where no range given."""
    data = params.copy()
    data.setdefault("end", today.isoformat())
    data.setdefault("start", (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat())
    return AiForm(data)
