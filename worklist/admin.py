"""Admin listings for administrators: worklist entries, alerts and failed
webhook deliveries.

Read-only: they change only through ``worklist`` services.
"""

from __future__ import annotations

from django.contrib import admin

from triage.admin import HidesPhi, ReadOnlyForAdministrators
from worklist.alerts.models import Alert, WebhookDelivery
from worklist.models import WorklistEntry


@admin.register(WorklistEntry)
class WorklistEntryAdmin(
    HidesPhi, ReadOnlyForAdministrators, admin.ModelAdmin[WorklistEntry]
):
    list_display = (
        "study_id",
        "reading_status",
        "claimed_by",
        "priority_score",
        "ai_flagged",
        "version",
        "finalized_at",
    )
    list_filter = ("reading_status", "ai_flagged")
    ordering = ("-priority_score",)
    # Priority components can state the patient's age.
    phi_fields = ("priority_components",)


@admin.register(Alert)
class AlertAdmin(HidesPhi, ReadOnlyForAdministrators, admin.ModelAdmin[Alert]):
    list_display = (
        "pk",
        "study_id",
        "finding_code",
        "status",
        "raised_at",
        "delivered_at",
        "acknowledged_at",
        "escalated_at",
        "resolution",
    )
    list_filter = ("status", "finding_code", "severity")
    ordering = ("-raised_at",)
    # Free text a technologist typed: it may name the patient.
    phi_fields = ("acknowledgement_note",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(
    ReadOnlyForAdministrators, admin.ModelAdmin[WebhookDelivery]
):
    list_display = (
        "attempted_at",
        "alert_id",
        "attempt",
        "succeeded",
        "status_code",
        "error",
        "url",
    )
    list_filter = ("succeeded",)
    ordering = ("-attempted_at",)
