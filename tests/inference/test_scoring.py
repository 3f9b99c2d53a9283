"""Scoring a stored study: findings explained, statuses always visible,
idempotent per instance set, one broken model never stopping the others."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from demo.synthetic import (
    HemorrhageType,
    make_ct_head_study,
    make_radiograph_study,
)
from inference import services
from inference.models import (
    Finding,
    ModelMode,
    RegisteredModel,
    ScoreResult,
    ScoreStatus,
    StudyScoring,
)
from inference.services import scoring
from inference.signals import study_scored
from inference.vocabulary import AIStatus
from tests.factories import scoring_of
from tests.inference.conftest import dicom_bytes
from triage import geometry
from triage.ingest.core import store_instance
from triage.models import Instance, Study, StudyEvent

pytestmark = pytest.mark.django_db

DEMO_MODELS = Path(settings.BASE_DIR) / "inference" / "demo_models"


def bleed_distance(index: int, slice_labels: tuple[bool, ...]) -> int:
    """Slices between ``index`` and the nearest slice holding blood."""
    return min(abs(index - i) for i, blood in enumerate(slice_labels) if blood)


def score(study: Study) -> bool:
    return services.score_study(study.pk, clock=timezone.now)


def test_a_head_ct_with_a_bleed_gets_an_explained_positive_finding(
    bleed: Study,
    django_capture_on_commit_callbacks: Any,
    scored_signals: list[dict[str, Any]],
    storage_dir: Path,
) -> None:
    truth = make_ct_head_study(
        20, slices=20, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
    ).hemorrhage
    assert truth is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert score(bleed)
    bleed.refresh_from_db()
    assert scoring_of(bleed).ai_status == AIStatus.SCORED
    assert scoring_of(bleed).scoring_started_at is not None
    assert scoring_of(bleed).scored_at is not None
    scored = StudyEvent.objects.get(study=bleed, kind="scored")
    assert scored.detail["amended"] is False  # a first result amends nothing
    finding = Finding.objects.live().get(study=bleed, code="ICH")
    assert finding.positive
    assert finding.probability >= finding.threshold == 0.5
    assert finding.key_slice_index is not None
    assert bleed_distance(finding.key_slice_index, truth.slice_labels) <= 2
    assert len(finding.slice_probabilities) == 20
    assert finding.key_instance_id is not None
    key = Instance.objects.get(pk=finding.key_instance_id)
    assert key.sop_instance_uid == finding.key_sop_instance_uid
    picture = cv2.imread(str(storage_dir / finding.heatmap_path))
    assert picture is not None and picture.shape[2] == 3
    result = finding.result
    assert result.model.model_id == "demo-ich-ct"
    assert result.model_version == "1.0.0"
    assert len(result.model_sha256) == 64
    assert result.series is not None
    assert result.instance_count == 20
    assert result.device == "cpu"
    kinds = list(StudyEvent.objects.filter(study=bleed).values_list("kind", flat=True))
    assert kinds[-2:] == [StudyEvent.Kind.SCORING_STARTED, StudyEvent.Kind.SCORED]
    assert scored_signals == [
        {"signal": study_scored, "study_id": bleed.pk, "changed": True}
    ]


def test_a_normal_head_ct_is_negative(store_study: Callable[..., Study]) -> None:
    normal = store_study(make_ct_head_study(12, slices=20, size=256))
    score(normal)
    finding = Finding.objects.get(study=normal, code="ICH")
    assert not finding.positive
    assert finding.probability < 0.5


def test_scoring_twice_changes_nothing(
    bleed: Study,
    django_capture_on_commit_callbacks: Any,
    scored_signals: list[dict[str, Any]],
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        score(bleed)  # its follow-up runs: the next one is alone
    assert not score(bleed)  # already scored: a re-delivered task exits
    # Stable again with the same instances (re-sent study): the result stands.
    with django_capture_on_commit_callbacks(execute=False):
        services.enqueue_scoring(bleed.pk, now=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert score(bleed)
    assert (
        ScoreResult.objects.filter(study=bleed, status=ScoreStatus.SCORED).count() == 1
    )
    assert Finding.objects.filter(study=bleed).count() == 1
    assert scored_signals[-1]["changed"] is False  # no re-alert


def test_a_study_that_grew_is_rescored_and_its_result_amended(
    store_study: Callable[..., Study],
) -> None:
    full = make_ct_head_study(13, slices=20, size=256, hemorrhage="subdural")
    partial = make_ct_head_study(13, slices=20, size=256, hemorrhage="subdural")
    study = store_study(
        type(partial)(**{**_fields(partial), "datasets": partial.datasets[:16]})
    )
    score(study)
    first = ScoreResult.objects.get(study=study, status=ScoreStatus.SCORED)
    assert first.instance_count == 16
    now = timezone.now()
    for ds in full.datasets[16:]:
        store_instance(dicom_bytes(ds), now=now)
    Study.objects.filter(pk=study.pk).update(stable_at=now)
    services.enqueue_scoring(study.pk, now=now)
    score(study)
    second = ScoreResult.objects.get(study=study, is_current=True, status="scored")
    assert second.pk != first.pk
    assert second.instance_count == 20
    assert second.supersedes_id == first.pk
    first.refresh_from_db()
    assert not first.is_current
    assert Finding.objects.current().filter(study=study).count() == 1


def _fields(study: Any) -> dict[str, Any]:
    return {name: getattr(study, name) for name in study.__slots__}


def test_a_radiograph_is_scored_by_the_fracture_model_only(
    store_study: Callable[..., Study],
) -> None:
    xr = store_study(make_radiograph_study(14, modality="CR", fracture=True))
    planes = Instance.objects.filter(series__study=xr).values_list("plane", flat=True)
    assert set(planes) == {"unknown"}  # no orientation: no file read to learn it
    score(xr)
    xr.refresh_from_db()
    assert scoring_of(xr).ai_status == AIStatus.SCORED
    results = {
        r.model.model_id: r
        for r in ScoreResult.objects.filter(study=xr).select_related("model")
    }
    assert results["demo-ich-ct"].status == ScoreStatus.NOT_APPLICABLE
    assert "modality CR is not CT" in results["demo-ich-ct"].reason
    finding = Finding.objects.get(study=xr)
    assert finding.code == "FX"
    assert finding.key_slice_index == 0


def test_no_applicable_model_makes_the_study_not_applicable_with_reasons(
    store_study: Callable[..., Study],
) -> None:
    study = make_ct_head_study(15, slices=4, size=64)  # too few slices
    stored = store_study(study)
    score(stored)
    stored.refresh_from_db()
    assert scoring_of(stored).ai_status == AIStatus.NOT_APPLICABLE
    assert "demo-ich-ct: 4 images, fewer than 8" in scoring_of(stored).ai_status_reason
    assert (
        "demo-fracture-xr: modality CT is not DX/CR"
        in scoring_of(stored).ai_status_reason
    )
    assert StudyEvent.objects.filter(
        study=stored, kind=StudyEvent.Kind.NOT_APPLICABLE
    ).exists()


def test_undecodable_pixels_fail_the_study_with_a_reason(
    store_study: Callable[..., Study], storage_dir: Path
) -> None:
    study = store_study(make_ct_head_study(16, slices=10, size=64))
    instance = Instance.objects.filter(series__study=study).first()
    assert instance is not None
    path = storage_dir / instance.storage_path
    path.write_bytes(path.read_bytes()[:-2000])
    score(study)
    study.refresh_from_db()
    assert scoring_of(study).ai_status == AIStatus.FAILED
    assert "pixels cannot be decoded" in scoring_of(study).ai_status_reason
    assert StudyEvent.objects.filter(
        study=study, kind=StudyEvent.Kind.SCORING_FAILED
    ).exists()


@pytest.fixture
def models_dir(settings: Any, tmp_path: Path) -> Path:
    target = tmp_path / "models"
    shutil.copytree(DEMO_MODELS, target)
    settings.RADTRIAGE_MODELS_DIR = target
    return target


def test_one_broken_model_never_stops_the_others(
    models_dir: Path, bleed: Study
) -> None:
    broken = models_dir / "demo-fracture-xr" / "model.onnx"
    broken.write_bytes(broken.read_bytes()[:-10])  # sha256 no longer matches
    score(bleed)
    bleed.refresh_from_db()
    assert scoring_of(bleed).ai_status == AIStatus.SCORED
    assert (
        "demo-fracture-xr failed: model cannot be loaded"
        in scoring_of(bleed).ai_status_reason
    )
    assert Finding.objects.get(study=bleed).positive
    row = RegisteredModel.objects.get(model_id="demo-fracture-xr")
    assert "sha256" in row.load_error


def test_a_malformed_manifest_is_an_error_for_that_model_alone(
    models_dir: Path, bleed: Study
) -> None:
    (models_dir / "demo-fracture-xr" / "manifest.json").write_text('{"id": 3}')
    score(bleed)
    bleed.refresh_from_db()
    assert scoring_of(bleed).ai_status == AIStatus.SCORED
    assert "manifest.id" in scoring_of(bleed).ai_status_reason


def test_a_shadow_model_scores_silently(bleed: Study) -> None:
    services.sync_registry()
    RegisteredModel.objects.filter(model_id="demo-ich-ct").update(mode=ModelMode.SHADOW)
    score(bleed)
    bleed.refresh_from_db()
    finding = Finding.objects.get(study=bleed)
    assert finding.shadow and finding.positive
    assert not Finding.objects.live().filter(study=bleed).exists()
    # No active model decided anything: readers see "not applicable", not a score.
    assert scoring_of(bleed).ai_status == AIStatus.NOT_APPLICABLE


def test_a_disabled_model_does_not_score(bleed: Study) -> None:
    services.sync_registry()
    RegisteredModel.objects.filter(model_id="demo-ich-ct").update(
        mode=ModelMode.DISABLED
    )
    score(bleed)
    assert not ScoreResult.objects.filter(study=bleed, model__model_id="demo-ich-ct")


def test_a_site_threshold_override_decides_positive(bleed: Study) -> None:
    services.sync_registry()
    setting = RegisteredModel.objects.get(model_id="demo-ich-ct").finding_settings.get()
    services.set_threshold_override(
        setting.pk, 0.9999999, user=None, now=timezone.now()
    )
    score(bleed)
    finding = Finding.objects.get(study=bleed)
    assert finding.threshold == 0.9999999
    assert finding.positive is (finding.probability >= 0.9999999)


def test_heatmap_is_brightest_near_the_bleed(bleed: Study, storage_dir: Path) -> None:
    truth = make_ct_head_study(
        20, slices=20, size=256, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
    ).hemorrhage
    assert truth is not None
    score(bleed)
    finding = Finding.objects.get(study=bleed)
    picture = cv2.imread(str(storage_dir / finding.heatmap_path))
    assert picture is not None
    red = picture[..., 2].astype(np.int32) - picture[..., 0].astype(np.int32)
    row, col = np.unravel_index(np.argmax(red), red.shape)
    scale = picture.shape[0] / 256
    distance = np.hypot(row - truth.centre_row * scale, col - truth.centre_col * scale)
    assert distance < 0.25 * picture.shape[0]


def test_a_heatmap_that_cannot_be_drawn_leaves_the_finding_without_a_picture(
    bleed: Study, storage_dir: Path
) -> None:
    with mock.patch(
        "inference.preprocess.heatmap_overlay_jpeg",
        side_effect=ValueError("JPEG encoding failed"),
    ):
        assert score(bleed)
    bleed.refresh_from_db()
    assert scoring_of(bleed).ai_status == AIStatus.SCORED
    finding = Finding.objects.live().get(study=bleed, code="ICH")
    assert finding.positive
    assert finding.heatmap_path == ""
    assert not (storage_dir / services.HEATMAP_DIR).exists()


def test_a_study_is_claimed_once_and_again_only_when_its_scoring_went_stale(
    store_study: Callable[..., Study],
) -> None:
    study = store_study(make_ct_head_study(31, slices=8, size=64))
    now = timezone.now()
    job = scoring._claim(study.pk, now)
    assert job is not None and job.early_series is None
    assert [len(refs) for refs in job.instances.values()] == [8]
    study.refresh_from_db()
    assert (scoring_of(study).ai_status, scoring_of(study).scoring_started_at) == (
        AIStatus.SCORING,
        now,
    )
    assert StudyEvent.objects.filter(study=study, kind="scoring_started").count() == 1
    # Scoring now: not claimed again until past the time limit.
    assert scoring._claim(study.pk, now + timedelta(seconds=5)) is None
    later = now + timedelta(seconds=settings.RADTRIAGE_SCORE_TIME_LIMIT + 31)
    assert scoring._claim(study.pk, later) is not None
    # Done: never claimed.
    StudyScoring.objects.filter(study_id=study.pk).update(ai_status=AIStatus.SCORED)
    assert scoring._claim(study.pk, later + timedelta(hours=1)) is None


def test_a_receiving_study_is_claimed_only_for_an_early_run(
    store_study: Callable[..., Study],
) -> None:
    study = store_study(
        make_ct_head_study(32, slices=8, size=64),
        stable=False,
        ai_status=AIStatus.QUEUED,
    )
    assert scoring._claim(study.pk, timezone.now()) is None
    queued = timezone.now()
    StudyScoring.objects.filter(study_id=study.pk).update(
        scoring_queued_at=queued, early_scoring_queued_at=queued
    )
    job = scoring._claim(study.pk, timezone.now())
    assert job is not None
    assert job.early_series == frozenset()  # no series is complete yet
    detail = StudyEvent.objects.get(study=study, kind="scoring_started").detail
    assert detail == {"early": True}


def test_the_plane_comes_from_what_ingest_recorded(bleed: Study) -> None:
    no_read = AssertionError("a header was read")
    with mock.patch("pydicom.dcmread", side_effect=no_read):
        job = scoring._claim(bleed.pk, timezone.now())
    assert job is not None
    assert [facts.axial for facts in job.series] == [True]
    # The recorded plane decides, not the files (still axial).
    Instance.objects.filter(series__study=bleed).update(plane=geometry.OTHER)
    StudyScoring.objects.filter(study_id=bleed.pk).update(ai_status=AIStatus.QUEUED)
    with mock.patch("pydicom.dcmread", side_effect=no_read):
        job = scoring._claim(bleed.pk, timezone.now())
    assert job is not None
    assert [facts.axial for facts in job.series] == [False]


def test_two_runs_storing_the_same_result_at_once_both_succeed(bleed: Study) -> None:
    # Run A decided its result rows are new; run B stores the same ones first.
    job = scoring._claim(bleed.pk, timezone.now())
    assert job is not None
    decoded: dict[Any, Any] = {}
    outcomes = [
        scoring._score_with(job, entry, decoded)
        for entry in services.registry()
        if entry.mode != ModelMode.DISABLED
    ]
    assert {o.status for o in outcomes} == {
        ScoreStatus.SCORED,
        ScoreStatus.NOT_APPLICABLE,
    }
    assert all(o.insert_first for o in outcomes)
    StudyScoring.objects.filter(study_id=bleed.pk).update(ai_status=AIStatus.QUEUED)
    assert score(bleed)

    services.apply_results(job, outcomes, now=timezone.now())

    bleed.refresh_from_db()
    assert scoring_of(bleed).ai_status == AIStatus.SCORED
    ich = ScoreResult.objects.filter(study=bleed, model__model_id="demo-ich-ct")
    assert ich.count() == 1
    fracture = ScoreResult.objects.filter(
        study=bleed, model__model_id="demo-fracture-xr"
    )
    assert fracture.get().status == ScoreStatus.NOT_APPLICABLE
    assert Finding.objects.live().filter(study=bleed, code="ICH").count() == 1
