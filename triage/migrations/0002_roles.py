"""Create the four role groups with their permissions."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.management import create_permissions
from django.db import migrations

# Frozen here rather than imported, so later changes to triage.roles need a new
# migration instead of silently rewriting history.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "radiologist": ("triage.read_studies", "triage.view_phi"),
    "charge technologist": (
        "triage.view_alert_board",
        "triage.acknowledge_alerts",
        "triage.view_phi",
    ),
    "department head": ("triage.view_reports", "triage.view_alert_board"),
    # Runs the site (accounts, models, thresholds) without reading studies.
    "administrator": (
        "triage.configure_ai",
        "triage.view_reports",
        "triage.view_alert_board",
        "auth.view_user",
        "auth.add_user",
        "auth.change_user",
        "auth.view_group",
        "triage.view_study",
        "triage.view_series",
        "triage.view_instance",
        "triage.view_studyevent",
        "triage.view_auditevent",
    ),
}


def create_roles(apps: Any, schema_editor: Any) -> None:
    # Permissions are normally made after all migrations ran; make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    for role, names in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        for name in names:
            app_label, codename = name.split(".")
            group.permissions.add(
                permission_model.objects.get(
                    content_type__app_label=app_label, codename=codename
                )
            )


def remove_roles(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
