"""Admin for AI models: enable, disable or shadow a model, override a finding's
threshold for this site. Every change goes through an audited service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet
from django.http import HttpRequest
from django.utils import timezone

from inference import services
from inference.models import (
    Finding,
    FindingSetting,
    ModelMode,
    RegisteredModel,
    ScoreResult,
    StudyScoring,
)
from triage.admin import ForAiAdministrators, HidesPhi, ReadOnlyForAdministrators


class ConfigureAiPermission(ForAiAdministrators):
    """Administrators with the "configure AI" permission manage models here."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class FindingSettingInline(
    ConfigureAiPermission, admin.TabularInline[FindingSetting, RegisteredModel]
):
    model = FindingSetting
    extra = 0
    can_delete = False
    fields = ("code", "display", "severity", "default_threshold", "threshold_override")
    readonly_fields = ("code", "display", "severity", "default_threshold")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ConfigureAiPermission, admin.ModelAdmin[RegisteredModel]):
    list_display = ("model_id", "version", "name", "mode", "load_error", "updated_at")
    list_filter = ("mode",)
    fields = ("model_id", "version", "name", "sha256", "folder", "mode", "load_error")
    readonly_fields = ("model_id", "version", "name", "sha256", "folder", "load_error")
    inlines = (FindingSettingInline,)
    actions = ("make_active", "make_shadow", "make_disabled")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # models come from RADTRIAGE_MODELS_DIR

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # results refer to them

    def get_queryset(self, request: HttpRequest) -> QuerySet[RegisteredModel]:
        services.sync_registry()
        return super().get_queryset(request)

    def save_model(
        self, request: HttpRequest, obj: RegisteredModel, form: Any, change: bool
    ) -> None:
        # Through the audited service, never a bare save().
        services.set_model_mode(
            obj.pk,
            ModelMode(obj.mode),
            user=request.user,
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
        )

    def save_formset(
        self,
        request: HttpRequest,
        form: Any,
        formset: BaseInlineFormSet[Any, Any, Any],
        change: bool,
    ) -> None:
        # Nothing is saved by the formset itself; the admin's history reads these.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = (
            [],
            [],
            [],
        )
        for inline_form in formset.forms:
            setting = inline_form.instance
            if isinstance(setting, FindingSetting) and setting.pk:
                services.set_threshold_override(
                    setting.pk,
                    inline_form.cleaned_data.get("threshold_override"),
                    user=request.user,
                    now=timezone.now(),
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )

    def _set_mode(self, request: HttpRequest, queryset: Any, mode: ModelMode) -> None:
        for row in queryset:
            services.set_model_mode(
                row.pk,
                mode,
                user=request.user,
                now=timezone.now(),
                remote_addr=request.META.get("REMOTE_ADDR"),
            )

    @admin.action(description="Make active (affects priority and alerts)")
    def make_active(self, request: HttpRequest, queryset: Any) -> None:
        self._set_mode(request, queryset, ModelMode.ACTIVE)

    @admin.action(description="Make shadow (score silently)")
    def make_shadow(self, request: HttpRequest, queryset: Any) -> None:
        self._set_mode(request, queryset, ModelMode.SHADOW)

    @admin.action(description="Disable")
    def make_disabled(self, request: HttpRequest, queryset: Any) -> None:
        self._set_mode(request, queryset, ModelMode.DISABLED)


@admin.register(StudyScoring)
class StudyScoringAdmin(
    HidesPhi, ReadOnlyForAdministrators, admin.ModelAdmin[StudyScoring]
):
    """Where each study stands in AI screening; written by scoring alone."""

    list_display = ("study_id", "ai_status", "scoring_queued_at", "scored_at")
    list_filter = ("ai_status",)
    ordering = ("-study_id",)
    # A reason may quote what a model read from the images' headers.
    phi_fields = ("ai_status_reason",)


@admin.register(ScoreResult)
class ScoreResultAdmin(ConfigureAiPermission, admin.ModelAdmin[ScoreResult]):
    list_display = (
        "id",
        "study_id",
        "model",
        "model_version",
        "status",
        "mode",
        "is_current",
        "device",
        "duration_ms",
        "scored_at",
    )
    list_filter = ("status", "mode", "is_current", "model")
    readonly_fields = tuple(
        f.name for f in ScoreResult._meta.get_fields() if f.concrete
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Finding)
class FindingAdmin(ConfigureAiPermission, admin.ModelAdmin[Finding]):
    list_display = (
        "id",
        "study_id",
        "code",
        "probability",
        "threshold",
        "positive",
        "shadow",
        "key_slice_index",
    )
    list_filter = ("code", "positive", "shadow")
    exclude = ("key_sop_instance_uid",)  # a DICOM UID: not for lists

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
