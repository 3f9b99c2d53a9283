"""Celery tasks of the base layer."""

from __future__ import annotations

import time

from celery import Task, shared_task
from django.conf import settings
from django.utils import timezone

from triage import services
from triage.ingest import orphans


@shared_task(bind=True, ignore_result=True)
def record_worker_heartbeat(self: Task[[], None]) -> None:
    """Record that a worker is consuming tasks, for /readyz and monitoring."""
    hostname = self.request.hostname or "unknown"
    services.record_worker_heartbeat(str(hostname), now=timezone.now())


@shared_task(ignore_result=True, max_retries=0)
def sweep_stability() -> None:
    """Declare quiet studies and series stable (beat runs this every few seconds).

    No retries: the next tick is the retry, and it is safe to run in several
    workers at once (each study is claimed under a skip-locked row lock).
    """
    now = timezone.now()
    services.mark_stable_studies(now)
    services.mark_stable_series(now)


@shared_task(ignore_result=True, max_retries=0)
def audit_storage() -> None:
    """Remove stored files no instance is recorded with (beat, daily)."""
    orphans.find_orphans(
        settings.RADTRIAGE_STORAGE_DIR,
        older_than_seconds=3600.0,
        now=time.time(),
        remove=True,
    )
