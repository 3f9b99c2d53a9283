"""Celery tasks of the scoring layer: thin, idempotent, taking ids."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from inference import followups, scoring_lease, services


class ScoringTask(DjangoTask[Any, Any]):
    """Records a permanent failure on the study, where the worklist shows it."""

    def on_failure(
        self,
        exc: Exception,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        study_id = args[0] if args else kwargs.get("study_id")
        if not isinstance(study_id, int):
            return
        if isinstance(exc, SoftTimeLimitExceeded):
            reason = (
                f"scoring took longer than {settings.RADTRIAGE_SCORE_SOFT_TIME_LIMIT} s"
            )
        elif isinstance(exc, services.TransientScoringError):
            reason = f"gave up after {self.max_retries} retries: {exc}"
        else:
            reason = f"scoring error: {type(exc).__name__}"
        services.record_scoring_failure(study_id, reason, now=timezone.now())


@shared_task(
    base=ScoringTask,
    ignore_result=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(services.TransientScoringError,),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=settings.RADTRIAGE_SCORE_MAX_RETRIES,
    soft_time_limit=settings.RADTRIAGE_SCORE_SOFT_TIME_LIMIT,
    time_limit=settings.RADTRIAGE_SCORE_TIME_LIMIT,
)
def score_study(study_id: int) -> None:
    """Score a study, stable or early (see services.score_study)."""
    services.score_study(study_id, clock=timezone.now)


@shared_task(ignore_result=True, max_retries=0)
def sweep_stuck_scoring() -> None:
    """Queue again stable studies whose scoring is stuck or was lost (beat)."""
    services.sweep_stuck_scoring(now=timezone.now())


@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(followups.FollowUpIncomplete, OperationalError),
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    # Then the sweeper goes on trying: a follow-up is never given up.
    max_retries=10,
)
def run_scoring_followups(study_id: int) -> None:
    """Run a study's pending follow-ups (priority, alerts); retried until done."""
    if followups.run(study_id, now=timezone.now()) is followups.FollowUpRun.FAILED:
        raise followups.FollowUpIncomplete(f"study_id={study_id}")


@shared_task(ignore_result=True, max_retries=0)
def sweep_scoring_followups() -> None:
    """Run the follow-ups of scoring results left pending (beat)."""
    followups.sweep(now=timezone.now())


@shared_task(ignore_result=True, max_retries=0)
def reclaim_expired_scoring() -> None:
    """Queue again studies whose scoring worker died (lease expired; beat)."""
    scoring_lease.reclaim_expired(now=timezone.now())
