"""Copy each study's reading state, claim, priority and version to its entry.

Runs before triage drops those columns from the study (triage 0010), so an
existing database loses nothing; every study gets an entry. Reversible: the
reverse copies the entries' values back onto the restored columns.
"""

from typing import Any

from django.db import migrations

#: The fields that move, named alike on both sides.
MOVED = (
    "reading_status",
    "claimed_by_id",
    "priority_score",
    "priority_components",
    "version",
    "first_opened_at",
    "claimed_at",
    "preliminary_at",
    "finalized_at",
)
CHUNK = 2000


def copy_to_entries(apps: Any, schema_editor: Any) -> None:
    Study = apps.get_model("triage", "Study")
    WorklistEntry = apps.get_model("worklist", "WorklistEntry")
    db = schema_editor.connection.alias
    ids = list(Study.objects.using(db).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        WorklistEntry.objects.using(db).bulk_create(
            [WorklistEntry(study_id=pk) for pk in chunk], ignore_conflicts=True
        )
        studies = {
            row["pk"]: row
            for row in Study.objects.using(db).filter(pk__in=chunk).values("pk", *MOVED)
        }
        entries = list(WorklistEntry.objects.using(db).filter(study_id__in=chunk))
        for entry in entries:
            for name in MOVED:
                setattr(entry, name, studies[entry.study_id][name])
        WorklistEntry.objects.using(db).bulk_update(entries, list(MOVED))


def copy_to_studies(apps: Any, schema_editor: Any) -> None:
    Study = apps.get_model("triage", "Study")
    WorklistEntry = apps.get_model("worklist", "WorklistEntry")
    db = schema_editor.connection.alias
    ids = list(
        WorklistEntry.objects.using(db).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), CHUNK):
        entries = {
            row["study_id"]: row
            for row in WorklistEntry.objects.using(db)
            .filter(pk__in=ids[start : start + CHUNK])
            .values("study_id", *MOVED)
        }
        studies = list(Study.objects.using(db).filter(pk__in=list(entries)))
        for study in studies:
            for name in MOVED:
                setattr(study, name, entries[study.pk][name])
        Study.objects.using(db).bulk_update(studies, list(MOVED))


class Migration(migrations.Migration):
    dependencies = [
        ("worklist", "0003_worklist_state"),
    ]

    operations = [migrations.RunPython(copy_to_entries, copy_to_studies)]
