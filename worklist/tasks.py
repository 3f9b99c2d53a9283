"""Celery tasks of the worklist: periodic priority refresh, claim auto-release."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from worklist import refresh, services


# A beat sweep is not retried: the next tick is its retry (as in triage and
# inference), so a database hiccup never stacks retries behind the schedule.
@shared_task(ignore_result=True, max_retries=0)
def refresh_priorities() -> None:
    """Re-score studies not final for the time they have waited."""
    refresh.refresh_all(now=timezone.now())


@shared_task(ignore_result=True, max_retries=0)
def release_inactive_claims() -> None:
    """Release claims whose reader has been inactive too long."""
    services.release_inactive_claims(now=timezone.now())
