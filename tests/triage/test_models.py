"""The database itself enforces one row per DICOM UID."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.factories import InstanceFactory, SeriesFactory, StudyFactory
from triage.models import Instance, Series, Study

pytestmark = pytest.mark.django_db


def test_study_instance_uid_is_unique() -> None:
    study = StudyFactory.create()
    with pytest.raises(IntegrityError), transaction.atomic():
        Study.objects.create(
            study_instance_uid=study.study_instance_uid, patient=study.patient
        )


def test_series_instance_uid_is_unique() -> None:
    series = SeriesFactory.create()
    with pytest.raises(IntegrityError), transaction.atomic():
        Series.objects.create(
            series_instance_uid=series.series_instance_uid, study=series.study
        )


def test_sop_instance_uid_is_unique() -> None:
    instance = InstanceFactory.create()
    with pytest.raises(IntegrityError), transaction.atomic():
        Instance.objects.create(
            sop_instance_uid=instance.sop_instance_uid,
            series=instance.series,
            sop_class_uid=instance.sop_class_uid,
            transfer_syntax_uid=instance.transfer_syntax_uid,
            storage_path="elsewhere.dcm",
            size_bytes=1,
            sha256="0" * 64,
            received_at=timezone.now(),
        )
