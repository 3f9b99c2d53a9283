"""Celery tasks of the worklist: periodic priority refresh, claim auto-release."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from worklist import services


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def refresh_priorities() -> None:
    """Re-score studies not final for the time they have waited."""
    services.refresh_priorities(now=timezone.now())


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def release_inactive_claims() -> None:
    """Release claims whose reader has been inactive too long."""
    services.release_inactive_claims(now=timezone.now())
