"""Critical-finding alerts with their time-to-notification stamps, and the
outbound webhook deliveries of their escalations."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from inference.models import Finding
from triage.models import Study


class AlertStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class AlertQuerySet(models.QuerySet["Alert"]):
    def unresolved(self) -> AlertQuerySet:
        return self.exclude(status=AlertStatus.RESOLVED)


class Alert(models.Model):
    """One critical finding of one study, raised once and updated on rescoring.

    The stamps from ``last_instance_received_at`` to ``acknowledged_at`` are the
    time-to-notification chain (all UTC); ``delivered_at`` is the first time a
    board in a browser confirmed it showed the alert. Written only by
    ``worklist.alerts.services``.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="alerts")
    finding_code = models.CharField(max_length=32)
    finding_display = models.CharField(max_length=128, blank=True, default="")
    finding = models.ForeignKey(
        Finding, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    severity = models.CharField(max_length=16)
    probability = models.FloatField()
    threshold = models.FloatField()
    status = models.CharField(
        max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN
    )
    version = models.PositiveBigIntegerField(default=1)
    last_instance_received_at = models.DateTimeField(null=True, blank=True)
    stable_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)
    raised_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    acknowledgement_note = models.TextField(blank=True, default="", max_length=1000)
    escalated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=64, blank=True, default="")
    updated_at = models.DateTimeField()

    objects = AlertQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "finding_code"], name="alert_once_per_study_finding"
            )
        ]
        indexes = [
            models.Index(
                fields=["raised_at"],
                condition=Q(escalated_at__isnull=True, status="open"),
                name="alert_open_unescalated_idx",
            ),
            models.Index(fields=["status", "raised_at"], name="alert_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.finding_code} alert #{self.pk} of study #{self.study_id}"


class WebhookDelivery(models.Model):
    """One attempt to post an alert's escalation to the outbound webhook."""

    alert = models.ForeignKey(
        Alert, on_delete=models.CASCADE, related_name="webhook_deliveries"
    )
    attempt = models.PositiveIntegerField()
    url = models.CharField(max_length=512)
    succeeded = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=512, blank=True, default="")
    attempted_at = models.DateTimeField()

    class Meta:
        ordering = ["-attempted_at", "-pk"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        outcome = "ok" if self.succeeded else "failed"
        return f"Webhook {outcome} for alert #{self.alert_id} (try {self.attempt})"
