"""The worklist's periodic tasks, called as plain functions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from tests.factories import StudyFactory, entry_of
from triage.roles import Role
from triage.vocabulary import PatientClass
from worklist import services, tasks
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


def test_refresh_task_rescores_waiting_studies() -> None:
    study = StudyFactory.create(
        patient_class=PatientClass.EMERGENCY,
        first_instance_received_at=timezone.now() - timedelta(minutes=30),
    )
    tasks.refresh_priorities()
    study.refresh_from_db()
    assert entry_of(study).priority_score == pytest.approx(30 + 10, abs=0.5)


def test_release_task_releases_idle_claims(make_user: Any) -> None:
    study = StudyFactory.create(reading_status=ReadingStatus.READY)
    long_ago = timezone.now() - timedelta(hours=2)
    services.claim_study(study.pk, make_user(Role.RADIOLOGIST), now=long_ago)
    tasks.release_inactive_claims()
    study.refresh_from_db()
    assert entry_of(study).claimed_by_id is None


def test_beat_schedules_the_refresh_and_the_release() -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "worklist.tasks.refresh_priorities",
        "worklist.tasks.release_inactive_claims",
    } <= scheduled
