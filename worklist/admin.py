"""Admin listings for administrators: alerts and failed webhook deliveries.

Read-only: alerts change only through ``worklist.alerts.services``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from triage.admin import ForAiAdministrators, HidesPhi
from worklist.alerts.models import Alert, WebhookDelivery


class ReadOnlyForAdministrators(ForAiAdministrators):
    """Administrators (the "configure AI" permission) see these; no one edits."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
