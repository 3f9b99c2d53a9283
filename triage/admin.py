"""Django admin for administrators. Lists show internal IDs, never PHI.

Two kinds of administration are kept apart:

* account administration (the administrator role): create users, give them one
  of the working roles, reset passwords, deactivate accounts;
* administrator management (superusers only): who is staff, superuser or an
  administrator, and what each group and user is permitted.

So an administrator can never raise anyone's rights, their own included: the
forms they see hold no staff, superuser or permission fields, the role list
leaves the administrator role out, and the accounts of other administrators,
of superusers and their own account are not theirs to change.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group, User
from django.db.models import ManyToManyField
from django.forms import ModelForm, ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from triage.models import (
    AuditEvent,
    HL7Message,
    Instance,
    Order,
    Series,
    Study,
    StudyEvent,
)
from triage.roles import CONFIGURE_AI, VIEW_PHI, Role
from triage.services import record_audit

# Rights only a superuser hands out.
_ADMINISTRATOR_FIELDS = ("is_staff", "is_superuser", "user_permissions")


def _is_superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


def _manages_administrators(request: HttpRequest, account: User) -> bool:
    """Whether an account needs a superuser to change it."""
    return bool(
        account.is_superuser
        or account.is_staff
        or account.pk == request.user.pk
        or account.groups.filter(name=Role.ADMINISTRATOR.value).exists()
        or account.user_permissions.exists()
    )


class AccountAdmin(DjangoUserAdmin[User]):
    """Users: account administration for administrators, all for superusers."""

    list_display = ("username", "is_active", "is_staff", "last_login")
    list_filter = ("is_active", "is_staff", "is_superuser", "groups")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if _is_superuser(request) or obj is None:
            return fieldsets
        trimmed = []
        for name, options in fieldsets:
            fields = tuple(
                f for f in options["fields"] if f not in _ADMINISTRATOR_FIELDS
            )
            trimmed.append((name, {**options, "fields": fields}))
        return tuple(trimmed)

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        if db_field.name == "groups" and not _is_superuser(request):
            # The working roles only: making an administrator is a superuser's.
            kwargs["queryset"] = Group.objects.filter(
                name__in=[r.value for r in Role if r is not Role.ADMINISTRATOR]
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        if obj is None or _is_superuser(request):
            return True
        return not _manages_administrators(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Accounts are deactivated, never deleted: the audit trail refers to them.
        return _is_superuser(request) and super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: User, form: ModelForm[User], change: bool
    ) -> None:
        if not _is_superuser(request):
            # The form has no such fields; this holds whatever was posted.
            if change:
                before = User.objects.get(pk=obj.pk)
                obj.is_staff, obj.is_superuser = before.is_staff, before.is_superuser
            else:
                obj.is_staff = obj.is_superuser = False
        super().save_model(request, obj, form, change)
        record_audit(
            user=request.user,
            action="change_account" if change else "create_account",
            object_type="user",
            object_id=str(obj.pk),
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
            detail={"changed": sorted(form.changed_data)},
        )


class RoleGroupAdmin(DjangoGroupAdmin):
    """Roles and their permissions: superusers only change them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return _is_superuser(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_superuser(request)


admin.site.unregister(User)
admin.site.register(User, AccountAdmin)
admin.site.unregister(Group)
admin.site.register(Group, RoleGroupAdmin)


class ForAiAdministrators:
    """Shows an app's pages to administrators (the "configure AI" permission)
    only; what they may do there is the subclass's to say."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"triage.{CONFIGURE_AI}"))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)


class ReadOnlyForAdministrators(ForAiAdministrators):
    """Administrators (the "configure AI" permission) see these; no one edits."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class HidesPhi:
    """Leaves ``phi_fields`` out of every form and list for users without view_phi."""

    phi_fields: tuple[str, ...] = ()

    @staticmethod
    def _sees_phi(request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"triage.{VIEW_PHI}"))

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> Any:
        excluded = tuple(super().get_exclude(request, obj) or ())  # type: ignore[misc]
        if self._sees_phi(request):
            return excluded
        return excluded + self.phi_fields

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_fields(request, obj)  # type: ignore[misc]
        if self._sees_phi(request):
            return fields
        return [f for f in fields if f not in self.phi_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = super().get_readonly_fields(request, obj)  # type: ignore[misc]
        if self._sees_phi(request):
            return fields
        return tuple(f for f in fields if f not in self.phi_fields)


@admin.register(Study)
class StudyAdmin(HidesPhi, admin.ModelAdmin[Study]):
    list_display = (
        "id",
        "modalities",
        "body_part_examined",
        "patient_class",
        "order_priority",
        "last_instance_received_at",
    )
    list_filter = ("modalities", "patient_class")
    readonly_fields = ("study_instance_uid", "patient")
    # Identifiers, dates of the patient's care and free text that may name them.
    phi_fields = (
        "study_instance_uid",
        "patient",
        "accession_number",
        "study_description",
        "study_date",
        "study_time",
        "acquired_at",
    )


@admin.register(Series)
class SeriesAdmin(HidesPhi, admin.ModelAdmin[Series]):
    list_display = ("id", "study_id", "modality", "series_number", "instance_count")
    readonly_fields = ("series_instance_uid", "study")
    phi_fields = ("series_instance_uid", "series_description")


@admin.register(Instance)
class InstanceAdmin(HidesPhi, admin.ModelAdmin[Instance]):
    list_display = ("id", "series_id", "instance_number", "size_bytes", "received_at")
    readonly_fields = ("sop_instance_uid", "series", "sha256", "storage_path")
    phi_fields = ("sop_instance_uid", "storage_path")


@admin.register(Order)
class OrderAdmin(HidesPhi, ReadOnlyForAdministrators, admin.ModelAdmin[Order]):
    """Orders as received; read-only: only ``triage.orders`` writes them."""

    list_display = (
        "id",
        "status",
        "source",
        "patient_class",
        "order_priority",
        "study_id",
        "received_at",
        "updated_at",
    )
    list_filter = ("status", "source", "patient_class", "order_priority")
    # Identifiers, demographics, the dates of care and free text that may name
    # the patient.
    phi_fields = (
        "accession_number",
        "study_instance_uid",
        "placer_order_number",
        "filler_order_number",
        "study",
        "patient_id",
        "issuer_of_patient_id",
        "patient_name",
        "patient_birth_date",
        "patient_sex",
        "assigned_location",
        "reason_for_study",
        "ordering_provider",
        "callback_number",
        "ordered_at",
        "cancel_reason",
    )


@admin.register(StudyEvent)
class StudyEventAdmin(HidesPhi, admin.ModelAdmin[StudyEvent]):
    list_display = ("id", "study_id", "kind", "at", "actor")
    list_filter = ("kind",)
    phi_fields = ("detail",)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ("at", "user", "action", "object_type", "object_id")
    list_filter = ("action", "object_type")

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False  # The audit trail is append-only.

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(HL7Message)
class HL7MessageAdmin(admin.ModelAdmin[HL7Message]):
    """Received HL7 messages, read-only, for the roles that may see PHI.

    The raw text is PHI (names, identifiers, reports), so the pages are for
    view_phi holders only and every page opened is audited; the list shows
    no message content and offers no search over it.
    """

    list_display = (
        "id",
        "received_at",
        "message_type",
        "trigger_event",
        "outcome",
        "ack_code",
    )
    list_filter = ("outcome", "message_type", "ack_code")
    ordering = ("-received_at", "-pk")
    readonly_fields = (
        "raw",
        "received_at",
        "remote_host",
        "message_type",
        "trigger_event",
        "control_id",
        "sending_application",
        "sending_facility",
        "outcome",
        "ack_code",
        "outcome_detail",
        "error_code",
        "applied_at",
        "duplicate_of",
    )

    @staticmethod
    def _sees_phi(request: HttpRequest) -> bool:
        return bool(request.user.has_perm(f"triage.{VIEW_PHI}"))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._sees_phi(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._sees_phi(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # append-only: what was received stays as received

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def _audit(self, request: HttpRequest, action: str, object_id: str = "") -> None:
        record_audit(
            user=request.user,
            action=action,
            object_type="hl7_message",
            object_id=object_id,
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
        )

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        if response.status_code == 200:
            self._audit(request, "list_hl7_messages")
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        response = super().change_view(request, object_id, form_url, extra_context)
        if response.status_code == 200:
            self._audit(request, "view_hl7_message", object_id)
        return response
