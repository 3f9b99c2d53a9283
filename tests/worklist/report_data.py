"""Create the hand-computed TAT fixture (tat_fixtures.py) in the database."""

from __future__ import annotations

from django.contrib.auth.models import User

from tests.factories import StudyFactory
from tests.worklist import tat_fixtures as fx
from triage.models import Study
from worklist.models import WorklistEntry


def create_fixture_studies() -> dict[str, Study]:
    """The six fixture studies and the late one, by name; dr_a reads A and E."""
    radiologist, _ = User.objects.get_or_create(username="dr_a")
    made: dict[str, Study] = {}
    for spec in (*fx.STUDIES, fx.LATE):
        times = spec.times()
        study = StudyFactory.create(
            modalities=spec.modalities,
            patient_class=spec.patient_class,
            order_priority=spec.order_priority,
            claimed_by=radiologist if spec.radiologist else None,
            last_instance_received_at=times["first_instance_received_at"],
            **times,
        )
        if spec.ai_flagged is not None:
            WorklistEntry.objects.filter(study=study).update(ai_flagged=spec.ai_flagged)
        made[spec.name] = study
    return made
