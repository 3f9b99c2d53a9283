"""Queues by urgency, retries with backoff, permanent failures on the study,
time limits, and the sweeper for stuck studies."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from demo.synthetic import make_ct_head_study
from inference import preprocess, services, tasks
from inference.models import Finding, StudyScoring
from inference.vocabulary import AIStatus
from tests.factories import scoring_of
from triage.models import Study, StudyEvent
from triage.signals import study_stable
from triage.vocabulary import OrderPriority, PatientClass

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_ct(store_study: Callable[..., Study]) -> Study:
    return store_study(make_ct_head_study(21, slices=12, size=128))


@pytest.mark.parametrize(
    ("patient_class", "order_priority", "queue"),
    [
        (PatientClass.EMERGENCY, OrderPriority.ROUTINE, "urgent"),
        (PatientClass.OUTPATIENT, OrderPriority.STAT, "urgent"),
        (PatientClass.INPATIENT, OrderPriority.URGENT, "routine"),
        (PatientClass.OUTPATIENT, OrderPriority.ROUTINE, "routine"),
    ],
)
def test_the_queue_follows_clinical_urgency(
    store_study: Callable[..., Study],
    django_capture_on_commit_callbacks: Any,
    patient_class: str,
    order_priority: str,
    queue: str,
) -> None:
    study = store_study(
        make_ct_head_study(22, slices=2, size=64),
        patient_class=patient_class,
        order_priority=order_priority,
    )
    with (
        mock.patch.object(tasks.score_study, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.enqueue_scoring(study.pk, now=timezone.now()) == queue
    send.assert_called_once_with((study.pk,), queue=queue)
    study.refresh_from_db()
    assert scoring_of(study).ai_status == AIStatus.QUEUED
    assert scoring_of(study).scoring_queued_at is not None
    assert StudyEvent.objects.get(study=study, kind="scoring_queued").detail == {
        "queue": queue
    }


def test_a_stable_study_is_queued_by_the_signal(
    small_ct: Study, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        mock.patch.object(tasks.score_study, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        study_stable.send(sender=Study, study_id=small_ct.pk)
    send.assert_called_once_with((small_ct.pk,), queue="routine")


def test_a_study_not_yet_stable_is_not_queued(
    store_study: Callable[..., Study],
) -> None:
    study = store_study(make_ct_head_study(23, slices=2, size=64), stable=False)
    assert services.enqueue_scoring(study.pk, now=timezone.now()) is None
    study.refresh_from_db()
    assert scoring_of(study).ai_status == AIStatus.PENDING


def test_transient_storage_errors_are_retried_then_scored(small_ct: Study) -> None:
    real = preprocess.read_series
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise OSError(5, "Input/output error")
        return real(*args, **kwargs)

    with mock.patch("inference.preprocess.read_series", side_effect=flaky):
        outcome = tasks.score_study.apply(args=(small_ct.pk,))
    # Retried inline (eager) until it succeeded: no exception left over.
    assert outcome.successful(), outcome.traceback
    assert calls["n"] == 3
    small_ct.refresh_from_db()
    assert scoring_of(small_ct).ai_status == AIStatus.SCORED
    assert Finding.objects.filter(study=small_ct).count() == 1


def test_retries_use_backoff_and_then_fail_the_study_with_a_reason(
    small_ct: Study,
) -> None:
    task: Any = tasks.score_study
    assert task.autoretry_for == (services.TransientScoringError,)
    assert task.retry_backoff and task.retry_jitter
    assert task.acks_late
    with mock.patch(
        "inference.preprocess.read_series", side_effect=OSError(5, "I/O error")
    ):
        outcome = tasks.score_study.apply(args=(small_ct.pk,))
    # Given up on with the storage error itself, not some other exception.
    assert outcome.failed()
    assert isinstance(outcome.result, services.TransientScoringError)
    small_ct.refresh_from_db()
    assert scoring_of(small_ct).ai_status == AIStatus.FAILED
    assert scoring_of(small_ct).ai_status_reason.startswith("gave up after 3 retries")


def test_the_time_limit_fails_the_study_with_a_reason(small_ct: Study) -> None:
    assert tasks.score_study.soft_time_limit == 300
    assert tasks.score_study.time_limit == 360
    with mock.patch.object(
        services, "score_study", side_effect=SoftTimeLimitExceeded()
    ):
        outcome = tasks.score_study.apply(args=(small_ct.pk,))
    assert outcome.failed()
    assert isinstance(outcome.result, SoftTimeLimitExceeded)
    small_ct.refresh_from_db()
    assert scoring_of(small_ct).ai_status == AIStatus.FAILED
    assert "longer than 300 s" in scoring_of(small_ct).ai_status_reason


def test_the_sweeper_queues_stuck_studies_again(
    store_study: Callable[..., Study], django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    old = now - timedelta(minutes=10)
    stuck_pending = store_study(make_ct_head_study(24, slices=2, size=64))
    stuck_queued = store_study(make_ct_head_study(25, slices=2, size=64))
    dead_worker = store_study(make_ct_head_study(26, slices=2, size=64))
    fresh = store_study(make_ct_head_study(27, slices=2, size=64))
    unstable = store_study(make_ct_head_study(28, slices=2, size=64), stable=False)
    Study.objects.filter(pk=stuck_pending.pk).update(stable_at=old)
    Study.objects.filter(pk=stuck_queued.pk).update(stable_at=old)
    StudyScoring.objects.filter(study_id=stuck_queued.pk).update(
        ai_status=AIStatus.QUEUED, scoring_queued_at=old
    )
    Study.objects.filter(pk=dead_worker.pk).update(stable_at=old)
    StudyScoring.objects.filter(study_id=dead_worker.pk).update(
        ai_status=AIStatus.SCORING, scoring_started_at=now - timedelta(hours=1)
    )
    StudyScoring.objects.filter(study_id=fresh.pk).update(
        ai_status=AIStatus.QUEUED, scoring_queued_at=now
    )
    with (
        mock.patch.object(tasks.score_study, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.sweep_stuck_scoring()
    queued = sorted(call.args[0][0] for call in send.call_args_list)
    assert queued == sorted([stuck_pending.pk, stuck_queued.pk, dead_worker.pk])
    assert unstable.pk not in queued


def test_a_task_for_a_deleted_study_exits_cleanly(db: None) -> None:
    outcome = tasks.score_study.apply(args=(999_999,), throw=True)
    assert outcome.successful()
    assert not StudyScoring.objects.filter(study_id=999_999).exists()
