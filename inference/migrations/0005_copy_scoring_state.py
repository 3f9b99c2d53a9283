"""Copy each study's AI status and scoring times to its StudyScoring row.

Runs before triage drops those columns from the study (triage 0011), so an
existing database loses nothing; every study gets a row. Reversible: the
reverse copies the values back onto the restored columns.
"""

from typing import Any

from django.db import migrations

#: The fields that move, named alike on both sides.
MOVED = (
    "ai_status",
    "ai_status_reason",
    "scoring_queued_at",
    "early_scoring_queued_at",
    "scoring_started_at",
    "scored_at",
)
CHUNK = 2000


def copy_to_scoring(apps: Any, schema_editor: Any) -> None:
    Study = apps.get_model("triage", "Study")
    StudyScoring = apps.get_model("inference", "StudyScoring")
    db = schema_editor.connection.alias
    ids = list(Study.objects.using(db).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), CHUNK):
        rows = Study.objects.using(db).filter(pk__in=ids[start : start + CHUNK])
        StudyScoring.objects.using(db).bulk_create(
            [
                StudyScoring(study_id=row["pk"], **{n: row[n] for n in MOVED})
                for row in rows.values("pk", *MOVED)
            ],
            ignore_conflicts=True,
        )


def copy_to_studies(apps: Any, schema_editor: Any) -> None:
    Study = apps.get_model("triage", "Study")
    StudyScoring = apps.get_model("inference", "StudyScoring")
    db = schema_editor.connection.alias
    ids = list(
        StudyScoring.objects.using(db).order_by("pk").values_list("pk", flat=True)
    )
    for start in range(0, len(ids), CHUNK):
        scorings = {
            row["study_id"]: row
            for row in StudyScoring.objects.using(db)
            .filter(pk__in=ids[start : start + CHUNK])
            .values("study_id", *MOVED)
        }
        studies = list(Study.objects.using(db).filter(pk__in=list(scorings)))
        for study in studies:
            for name in MOVED:
                setattr(study, name, scorings[study.pk][name])
        Study.objects.using(db).bulk_update(studies, list(MOVED))


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0004_study_scoring"),
    ]

    operations = [migrations.RunPython(copy_to_scoring, copy_to_studies)]
