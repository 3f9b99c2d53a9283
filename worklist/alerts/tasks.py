"""Celery tasks of alerting: the overdue sweep, escalation email and webhook."""

from __future__ import annotations

from smtplib import SMTPException

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from worklist.alerts import services


# A beat sweep is not retried: the next tick is its retry (as in triage and
# inference), so a database hiccup never stacks retries behind the schedule.
@shared_task(ignore_result=True, max_retries=0)
def escalate_overdue_alerts() -> None:
    """Escalate open alerts not acknowledged in time (run by beat)."""
    services.escalate_overdue(now=timezone.now())


@shared_task(
    ignore_result=True,
    autoretry_for=(OperationalError, SMTPException, OSError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def send_escalation_email(alert_id: int) -> None:
    """Email the department heads that an alert was not acknowledged."""
    services.send_escalation_email(alert_id)


@shared_task(
    bind=True,
    ignore_result=True,
    autoretry_for=(services.WebhookFailed, OperationalError),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=settings.RADTRIAGE_ALERT_WEBHOOK_MAX_RETRIES,
)
def deliver_alert_webhook(self: Task[[int], None], alert_id: int) -> None:
    """Post an escalated alert to the outbound webhook; retried with backoff."""
    services.deliver_webhook(
        alert_id, attempt=self.request.retries + 1, now=timezone.now()
    )
