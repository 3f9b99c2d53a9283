"""Putting studies on the scoring queues: when stable, early (one series
complete), and again when stuck."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from inference.models import ModelMode, StudyScoring
from inference.services._common import announce_changed, lock_scoring
from inference.services.applicability import chooses, current_series_facts
from inference.services.claims import stale_run
from inference.services.model_registry import registry
from inference.vocabulary import AIStatus
from triage.models import Series, StudyEvent
from triage.services import record_study_event
from triage.vocabulary import OrderPriority, PatientClass

logger = logging.getLogger(__name__)


URGENT_QUEUE = "urgent"


ROUTINE_QUEUE = "routine"


def scoring_queue(patient_class: str, order_priority: str) -> str:
    """The Celery queue for a study: urgent for emergency patients and STAT
    orders, so an ED head CT never waits behind an outpatient backlog."""
    if patient_class == PatientClass.EMERGENCY or order_priority == OrderPriority.STAT:
        return URGENT_QUEUE
    return ROUTINE_QUEUE


def _send_score_task(study_id: int, queue: str) -> None:
    from inference.tasks import score_study

    score_study.apply_async((study_id,), queue=queue)


@transaction.atomic
def enqueue_scoring(
    study_id: int, *, now: datetime, announce: bool = True
) -> str | None:
    """Queue a stable study for scoring on the queue its urgency calls for.

    Sets AI status "queued" and the queued time, records the event and sends the
    task once committed. A study that is not (or no longer) stable, or gone, is
    left alone. ``announce=False`` leaves telling the worklist to the caller
    (stability announces the study as changed right after).

    Returns:
        The queue name, or None when nothing was queued.
    """
    scoring = lock_scoring(study_id)
    if scoring is None or scoring.study.stable_at is None:
        return None
    study = scoring.study
    queue = scoring_queue(study.patient_class, study.order_priority)
    _mark_queued(scoring, queue, now, announce=announce)
    return queue


def _mark_queued(
    scoring: StudyScoring,
    queue: str,
    now: datetime,
    *,
    early_series_id: int | None = None,
    announce: bool = True,
) -> None:
    """Set a locked study "queued", record it, and send the task once committed.

    With ``early_series_id`` the run is an early one, for that complete series.
    """
    scoring.ai_status = AIStatus.QUEUED
    scoring.ai_status_reason = ""
    scoring.scoring_queued_at = now
    fields = ["ai_status", "ai_status_reason", "scoring_queued_at"]
    detail: dict[str, Any] = {"queue": queue}
    if early_series_id is not None:
        scoring.early_scoring_queued_at = now
        fields.append("early_scoring_queued_at")
        detail |= {"early": True, "series_id": early_series_id}
    scoring.save(update_fields=fields)
    study_id = scoring.study_id
    record_study_event(study_id, StudyEvent.Kind.SCORING_QUEUED, at=now, detail=detail)
    transaction.on_commit(partial(_send_score_task, study_id, queue), robust=True)
    if announce:
        transaction.on_commit(partial(announce_changed, study_id), robust=True)


def enqueue_early_scoring(
    study_id: int, series_id: int, *, now: datetime
) -> str | None:
    """Queue scoring of a study still receiving, because one series is complete.

    Beats the study's quiet period where the content allows: when an enabled
    (active or shadow) model's applicability, applied to the study's series as
    they stand, chooses the stable ``series_id``, that model need not wait for
    the rest of the study. The early run scores only the models whose chosen
    series is stable; when the study becomes stable its normal scoring reuses
    the results whose series is unchanged and amends the others.

    Same queue as :func:`enqueue_scoring`. Nothing is queued for a study that is
    stable (its own scoring covers it) or gone, for a series reopened since, when
    an early run is already queued (it will see this series too), or when no
    model chooses this series.

    Returns:
        The queue name, or None when nothing was queued.
    """
    facts = current_series_facts(study_id)
    models = [e for e in registry() if e.mode != ModelMode.DISABLED]
    if not any(chooses(entry, facts, frozenset({series_id})) for entry in models):
        return None
    return _queue_early(study_id, series_id, now)


@transaction.atomic
def _queue_early(study_id: int, series_id: int, now: datetime) -> str | None:
    scoring = lock_scoring(study_id)
    if scoring is None or scoring.study.stable_at is not None:
        return None
    if not Series.objects.filter(
        pk=series_id, study_id=study_id, stable_at__isnull=False
    ).exists():
        return None
    if (
        scoring.ai_status == AIStatus.QUEUED
        and scoring.early_scoring_queued_at is not None
        and scoring.early_scoring_queued_at == scoring.scoring_queued_at
    ):
        return None
    study = scoring.study
    queue = scoring_queue(study.patient_class, study.order_priority)
    _mark_queued(scoring, queue, now, early_series_id=series_id)
    return queue


def sweep_stuck_scoring(*, now: datetime, limit: int = 200) -> list[int]:
    """Queue again stable studies stuck before scoring.

    Stuck: stable and still pending (the enqueue was lost), queued for longer
    than RADTRIAGE_SCORING_STUCK_SECONDS (the task was lost), scoring for
    longer than the task's hard time limit (the worker died), or holding an
    earlier result (early, or from before late images reopened it) and not
    queued since it became stable (the enqueue was lost). A study still
    receiving is never queued here: its stability will queue it.

    Returns:
        The ids of the studies queued again.
    """
    stuck_before = now - timedelta(seconds=settings.RADTRIAGE_SCORING_STUCK_SECONDS)
    candidates = list(
        StudyScoring.objects.filter(study__stable_at__isnull=False)
        .filter(
            Q(ai_status=AIStatus.PENDING, study__stable_at__lt=stuck_before)
            | Q(ai_status=AIStatus.QUEUED, scoring_queued_at__lt=stuck_before)
            | Q(ai_status=AIStatus.QUEUED, scoring_queued_at__isnull=True)
            | stale_run(now)
            | Q(
                ai_status__in=[
                    AIStatus.SCORED,
                    AIStatus.NOT_APPLICABLE,
                    AIStatus.FAILED,
                ],
                study__stable_at__lt=stuck_before,
                scoring_queued_at__lt=F("study__stable_at"),
            )
        )
        .order_by("study__stable_at")
        .values_list("study_id", flat=True)[:limit]
    )
    requeued = []
    for study_id in candidates:
        if enqueue_scoring(study_id, now=now) is not None:
            requeued.append(study_id)
    if requeued:
        logger.warning("re-enqueued %d stuck studies for scoring", len(requeued))
    return requeued
