"""Scoring before the study is stable, when the series a model needs is complete:
the early result stands when nothing changes and is amended when it does."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import pydicom
import pytest
from django.utils import timezone
from pydicom.uid import generate_uid

from demo.synthetic import HemorrhageType, make_ct_head_study
from inference import services, tasks
from inference.models import (
    Finding,
    ModelMode,
    RegisteredModel,
    ScoreResult,
    StudyScoring,
)
from inference.vocabulary import AIStatus
from tests.factories import scoring_of
from tests.inference.conftest import dicom_bytes
from triage import services as triage_services
from triage.ingest.core import store_instance
from triage.models import Series, Study, StudyEvent
from triage.stability import parse_stability_seconds
from worklist.alerts.models import Alert

pytestmark = pytest.mark.django_db

# In the past, so that the times the services stamp themselves come later.
T0 = timezone.now().replace(microsecond=0) - timedelta(hours=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _rules(settings: Any) -> None:
    settings.RADTRIAGE_STABILITY = parse_stability_seconds(
        "CT=10,*=15", handover_seconds=2
    )


@pytest.fixture
def sent() -> Iterator[mock.MagicMock]:
    """The scoring tasks sent (the test runs them itself)."""
    with mock.patch.object(tasks.score_study, "apply_async") as send:
        yield send


@pytest.fixture
def sweep(
    django_capture_on_commit_callbacks: Any, sent: mock.MagicMock
) -> Callable[[float], None]:
    """The stability sweep at T0 + seconds, its signals' receivers run."""

    def run(seconds: float) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            triage_services.mark_stable_studies(at(seconds))
            triage_services.mark_stable_series(at(seconds))

    return run


@pytest.fixture
def score(django_capture_on_commit_callbacks: Any) -> Callable[[Study], bool]:
    """Run the queued scoring task's body, its announcements received."""

    def run(study: Study) -> bool:
        with django_capture_on_commit_callbacks(execute=True):
            return services.score_study(study.pk, clock=timezone.now)

    return run


HEAD = make_ct_head_study(
    20, slices=20, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
)


BONE_SERIES_UID = str(generate_uid())


def bone_slice(number: int) -> bytes:
    """A slice of a bone-window reformat of HEAD: a series no model scores."""
    copy = pydicom.dcmread(io.BytesIO(dicom_bytes(HEAD.datasets[0])))
    copy.SeriesInstanceUID = BONE_SERIES_UID
    copy.SOPInstanceUID = generate_uid()
    copy.SeriesNumber = 2
    copy.SeriesDescription = "Head Bone"
    copy.InstanceNumber = number
    return dicom_bytes(copy)


def store_axial(seconds: float, *, first: int = 0, last: int = 20) -> Study:
    for dataset in HEAD.datasets[first:last]:
        outcome = store_instance(dicom_bytes(dataset), now=at(seconds))
    return Study.objects.get(pk=outcome.study_id)


def axial_series() -> Series:
    return Series.objects.exclude(series_instance_uid=BONE_SERIES_UID).get()


def ich_results(study: Study) -> list[ScoreResult]:
    return list(
        ScoreResult.objects.filter(study=study, model__model_id="demo-ich-ct").order_by(
            "pk"
        )
    )


def test_a_series_handed_over_is_scored_while_its_study_still_receives(
    sweep: Callable[[float], None],
    score: Callable[[Study], bool],
    sent: mock.MagicMock,
    scored_signals: list[dict[str, Any]],
) -> None:
    study = store_axial(0)
    store_instance(bone_slice(1), now=at(1))  # the modality moved on

    sweep(1.9)
    sent.assert_not_called()
    sweep(2)  # the axial series is 2 s quiet and the study moved on: complete
    sent.assert_called_once_with((study.pk,), queue="routine")
    study.refresh_from_db()
    assert study.stable_at is None
    assert scoring_of(study).ai_status == AIStatus.QUEUED
    assert (
        scoring_of(study).early_scoring_queued_at == scoring_of(study).scoring_queued_at
    )
    queued = StudyEvent.objects.get(study=study, kind="scoring_queued")
    assert queued.detail == {
        "queue": "routine",
        "early": True,
        "series_id": axial_series().pk,
    }

    assert score(study)
    study.refresh_from_db()
    assert study.stable_at is None  # still receiving, but already screened
    assert scoring_of(study).ai_status == AIStatus.SCORED
    [result] = ich_results(study)
    assert result.series_id == axial_series().pk
    assert result.instance_count == 20
    # Only the model whose series is complete ran: the others wait.
    assert ScoreResult.objects.filter(study=study).count() == 1
    assert Finding.objects.live().get(study=study).positive
    assert Alert.objects.filter(study=study).count() == 1
    assert scored_signals[-1]["changed"] is True


def test_the_stable_study_reuses_an_early_result_nothing_changed(
    sweep: Callable[[float], None],
    score: Callable[[Study], bool],
    sent: mock.MagicMock,
    scored_signals: list[dict[str, Any]],
) -> None:
    study = store_axial(0)
    store_instance(bone_slice(1), now=at(1))
    store_instance(bone_slice(2), now=at(3))
    sweep(2)
    score(study)
    [early] = ich_results(study)
    alert = Alert.objects.get(study=study)
    study.refresh_from_db()
    first_scored_at = scoring_of(study).scored_at
    assert first_scored_at is not None

    sweep(13)  # quiet for CT's 10 s: the study is stable and queued as usual
    study.refresh_from_db()
    assert study.stable_at == at(13)
    assert scoring_of(study).ai_status == AIStatus.QUEUED
    assert sent.call_count == 2
    assert score(study)

    study.refresh_from_db()
    assert scoring_of(study).ai_status == AIStatus.SCORED
    assert ich_results(study) == [early]  # reused, not scored again
    early.refresh_from_db()
    assert early.is_current
    assert scored_signals[-1]["changed"] is False  # no re-alert
    assert Alert.objects.get(study=study).finding_id == alert.finding_id
    last = StudyEvent.objects.filter(study=study, kind="scored").last()
    assert last is not None and last.detail["amended"] is False
    # Turnaround keeps the time the early result was first there.
    assert scoring_of(study).scored_at == first_scored_at


def test_a_late_slice_in_the_scored_series_amends_the_early_result(
    sweep: Callable[[float], None],
    score: Callable[[Study], bool],
    scored_signals: list[dict[str, Any]],
) -> None:
    study = store_axial(0, last=16)
    store_instance(bone_slice(1), now=at(1))
    sweep(2)
    score(study)
    [early] = ich_results(study)
    assert early.instance_count == 16

    store_axial(4, first=16)  # the rest of the axial series, late
    assert axial_series().stable_at is None  # reopened
    sweep(14)
    assert score(study)

    first, second = ich_results(study)
    assert first == early
    assert second.instance_count == 20
    assert second.supersedes_id == early.pk
    assert second.is_current
    first.refresh_from_db()
    assert not first.is_current
    assert Finding.objects.current().filter(study=study).count() == 1
    assert scored_signals[-1]["changed"] is True
    last = StudyEvent.objects.filter(study=study, kind="scored").last()
    assert last is not None and last.detail["amended"] is True


def test_a_complete_series_no_model_wants_queues_nothing(
    sweep: Callable[[float], None], sent: mock.MagicMock
) -> None:
    study = store_axial(0)
    store_instance(bone_slice(1), now=at(1))
    sweep(1)
    bone = Series.objects.get(series_instance_uid=BONE_SERIES_UID)
    Series.objects.filter(pk=bone.pk).update(stable_at=at(1))
    assert services.enqueue_early_scoring(study.pk, bone.pk, now=at(1)) is None
    sent.assert_not_called()


def test_a_stable_study_is_not_queued_early(sent: mock.MagicMock) -> None:
    study = store_axial(0)
    Study.objects.filter(pk=study.pk).update(stable_at=at(10))
    Series.objects.update(stable_at=at(10))
    assert (
        services.enqueue_early_scoring(study.pk, axial_series().pk, now=at(10)) is None
    )


def test_an_early_run_of_shadow_models_only_leaves_the_study_waiting(
    sweep: Callable[[float], None], score: Callable[[Study], bool]
) -> None:
    services.sync_registry()
    RegisteredModel.objects.filter(model_id="demo-ich-ct").update(mode=ModelMode.SHADOW)
    study = store_axial(0)
    store_instance(bone_slice(1), now=at(1))
    sweep(2)
    study.refresh_from_db()
    assert scoring_of(study).ai_status == AIStatus.QUEUED
    score(study)
    study.refresh_from_db()
    # Nothing a reader sees was scored: waiting, not "not applicable".
    assert scoring_of(study).ai_status == AIStatus.PENDING
    [shadow] = ich_results(study)
    assert shadow.mode == ModelMode.SHADOW
    assert Finding.objects.get(study=study).shadow


def test_the_sweeper_leaves_early_scored_studies_to_their_stability(
    sweep: Callable[[float], None], score: Callable[[Study], bool]
) -> None:
    study = store_axial(0)
    store_instance(bone_slice(1), now=at(1))
    sweep(2)
    score(study)
    later = timezone.now() + timedelta(hours=2)
    assert services.sweep_stuck_scoring(now=later) == []

    # Stable, but the enqueue its stability should have caused was lost.
    Study.objects.filter(pk=study.pk).update(stable_at=timezone.now())
    with mock.patch.object(tasks.score_study, "apply_async"):
        assert services.sweep_stuck_scoring(now=later) == [study.pk]
        assert score(study)
        assert services.sweep_stuck_scoring(now=later) == []  # no loop


def test_a_normal_task_does_not_score_a_reopened_study_early(
    score: Callable[[Study], bool],
) -> None:
    study = store_axial(0)
    StudyScoring.objects.filter(study_id=study.pk).update(
        ai_status=AIStatus.QUEUED,
        scoring_queued_at=at(30),
        early_scoring_queued_at=at(5),  # an earlier early run
    )
    assert not score(study)
