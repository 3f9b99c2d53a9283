"""Django admin for administrators. Lists show internal IDs, never PHI."""

from __future__ import annotations

from django.contrib import admin

from triage.models import AuditEvent, Instance, Series, Study, StudyEvent


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin[Study]):
    list_display = (
        "id",
        "modalities",
        "body_part_examined",
        "patient_class",
        "order_priority",
        "ai_status",
        "reading_status",
        "priority_score",
        "last_instance_received_at",
    )
    list_filter = ("modalities", "patient_class", "ai_status", "reading_status")
    readonly_fields = ("study_instance_uid", "patient", "version")


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin[Series]):
    list_display = ("id", "study_id", "modality", "series_number", "instance_count")
    readonly_fields = ("series_instance_uid", "study")


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin[Instance]):
    list_display = ("id", "series_id", "instance_number", "size_bytes", "received_at")
    readonly_fields = ("sop_instance_uid", "series", "sha256", "storage_path")


@admin.register(StudyEvent)
class StudyEventAdmin(admin.ModelAdmin[StudyEvent]):
    list_display = ("id", "study_id", "kind", "at", "actor")
    list_filter = ("kind",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ("at", "user", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False  # The audit trail is append-only.

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
