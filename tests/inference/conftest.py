"""Fixtures for the scoring layer: synthetic studies stored through ingest."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from pydicom.filewriter import dcmwrite

from demo.synthetic import HemorrhageType, SyntheticStudy, make_ct_head_study
from inference import runtime
from inference.models import StudyScoring
from inference.services import model_registry
from inference.signals import study_scored
from tests.factories import SCORING_FIELDS
from triage.ingest.core import store_instance
from triage.models import Study


def dicom_bytes(dataset: Any) -> bytes:
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _fresh_runtime() -> Iterator[None]:
    model_registry._discovered.clear()
    model_registry._synced.clear()
    runtime.clear_device_plans()
    yield
    runtime.clear_sessions()
    runtime.clear_device_plans()
    model_registry._discovered.clear()
    model_registry._synced.clear()


@pytest.fixture
def store_study(db: None) -> Callable[..., Study]:
    """Store a synthetic study through the real ingest path and mark it stable."""

    def store(study: SyntheticStudy, *, stable: bool = True, **fields: Any) -> Study:
        now = timezone.now()
        study_id = None
        for ds in study.datasets:
            study_id = store_instance(dicom_bytes(ds), now=now).study_id
        assert study_id is not None
        scoring = {k: fields.pop(k) for k in list(fields) if k in SCORING_FIELDS}
        updates: dict[str, Any] = dict(fields)
        if stable:
            updates["stable_at"] = now + timedelta(seconds=1)
        Study.objects.filter(pk=study_id).update(**updates)
        StudyScoring.objects.filter(study_id=study_id).update(**scoring)
        return Study.objects.get(pk=study_id)

    return store


@pytest.fixture
def bleed(store_study: Callable[..., Study]) -> Study:
    """A stored, stable head CT with an intraparenchymal bleed (20 slices)."""
    return store_study(
        make_ct_head_study(
            20, slices=20, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
        )
    )


@pytest.fixture
def scored_signals() -> Iterator[list[dict[str, Any]]]:
    """What the study_scored signal sent during the test."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    study_scored.connect(receiver, dispatch_uid="test-scored")
    yield received
    study_scored.disconnect(dispatch_uid="test-scored")
