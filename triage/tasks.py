"""Celery tasks of the base layer."""

from __future__ import annotations

from celery import Task, shared_task
from django.utils import timezone

from triage import services


@shared_task(bind=True, ignore_result=True)
def record_worker_heartbeat(self: Task[[], None]) -> None:
    """Record that a worker is consuming tasks, for /readyz and monitoring."""
    hostname = self.request.hostname or "unknown"
    services.record_worker_heartbeat(str(hostname), now=timezone.now())
