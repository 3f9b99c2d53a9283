"""What the worklist keeps beyond the base layer: reading activity, AI feedback,
each reader's filters."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from inference.models import Finding
from triage.models import Study
from triage.vocabulary import choices
from worklist.vocabulary import ReadingStatus


class WorklistEntry(models.Model):
    """The worklist's state of one study; only ``worklist`` services write it.

    One per study, created with the study. It holds the reading state and claim,
    the priority and its components as readers see them, and the delta version
    browsers compare against. ``shown_digest`` fingerprints everything a row
    shows, so the version moves (and a delta goes out) only when a reader would
    see a change. ``ai_flagged`` mirrors whether a live (current, not shadow) AI
    finding is positive, so the list can filter on it; ``last_activity_at`` is
    the claimant's last sign of life (claim, open, feedback), for the automatic
    release.
    """

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, primary_key=True, related_name="worklist_entry"
    )
    reading_status = models.CharField(
        max_length=16,
        choices=choices(ReadingStatus),
        default=ReadingStatus.AWAITING_IMAGES,
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="claimed_entries",
    )
    priority_score = models.FloatField(default=0.0)
    # The engine's components as shown to readers: [{"code", "points", "reason"}].
    priority_components = models.JSONField(default=list, blank=True)
    # Bumped on every change a browser should see; live deltas carry it.
    version = models.PositiveBigIntegerField(default=0)
    shown_digest = models.CharField(max_length=32, blank=True, default="")
    ai_flagged = models.BooleanField(default=False)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    # The reading timeline; each is set once by the service making the transition.
    first_opened_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    preliminary_at = models.DateTimeField(null=True, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "worklist entries"
        indexes = [
            models.Index(
                fields=["last_activity_at"],
                condition=models.Q(last_activity_at__isnull=False),
                name="worklistentry_activity_idx",
            ),
            # The worklist: entries not final, by priority (worklist.ordering).
            models.Index(
                fields=["-priority_score", "study"],
                condition=~models.Q(reading_status="final"),
                name="worklistentry_order_idx",
            ),
            models.Index(fields=["finalized_at"], name="worklistentry_final_idx"),
        ]

    def __str__(self) -> str:
        return f"Worklist entry of study #{self.study_id}"


class FeedbackVerdict(models.TextChoices):
    AGREE = "agree", "Agree"
    DISAGREE = "disagree", "Disagree"
    UNSURE = "unsure", "Unsure"


class AIFeedback(models.Model):
    """A radiologist's verdict on one AI finding of a study; one per reader."""

    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="ai_feedback"
    )
    # The finding's code ("ich"), kept should the finding be superseded.
    finding_code = models.CharField(max_length=64)
    # The finding judged, with its model, version, probability and threshold.
    finding = models.ForeignKey(
        Finding,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="feedback",
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True
    )
    verdict = models.CharField(max_length=16, choices=FeedbackVerdict.choices)
    comment = models.TextField(blank=True, default="", max_length=2000)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        verbose_name = "AI feedback"
        verbose_name_plural = "AI feedback"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "finding_code", "user"],
                name="aifeedback_one_per_reader",
            )
        ]

    def __str__(self) -> str:
        return f"{self.verdict} on {self.finding_code} of study #{self.study_id}"


class WorklistFilter(models.Model):
    """A reader's worklist filters, kept between sessions."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="worklist_filter",
    )
    modality = models.CharField(max_length=16, blank=True, default="")
    body_part = models.CharField(max_length=64, blank=True, default="")
    patient_class = models.CharField(max_length=16, blank=True, default="")
    reading_status = models.CharField(max_length=16, blank=True, default="")
    # None: both; True: only studies AI raised; False: only those it did not.
    ai_flagged = models.BooleanField(null=True, blank=True)
    mine = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    #: The fields a reader sets (the API's and the service's one list).
    FILTERS = (
        "modality",
        "body_part",
        "patient_class",
        "reading_status",
        "ai_flagged",
        "mine",
    )

    def __str__(self) -> str:
        return f"Worklist filter of user #{self.user_id}"


# Alerts live in their own package; Django finds models through this module.
from worklist.alerts.models import Alert, AlertStatus, WebhookDelivery  # noqa: E402

__all__ = [
    "AIFeedback",
    "Alert",
    "AlertStatus",
    "FeedbackVerdict",
    "ReadingStatus",
    "WebhookDelivery",
    "WorklistEntry",
    "WorklistFilter",
]
