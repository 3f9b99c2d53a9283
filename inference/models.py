"""Registered models with the site's settings, and what each scored: results
with their provenance and the findings shown to readers."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from inference.vocabulary import AIStatus, ReportLabel
from triage.models import Instance, Report, Series, Study
from triage.vocabulary import Severity, choices


class StudyScoring(models.Model):
    """Where one study stands in AI screening; only ``inference`` writes it.

    One per study, made with it. The times are the scoring timeline the
    turnaround reports read: queued, started, and the first result readers
    could see. ``early_scoring_queued_at`` equals ``scoring_queued_at`` while
    the queued run is an early one (a series some model needs was complete
    before the study; ``triage.stability``), which may claim a study still
    receiving and score those models only.
    """

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, primary_key=True, related_name="scoring"
    )
    ai_status = models.CharField(
        max_length=16, choices=choices(AIStatus), default=AIStatus.PENDING
    )
    ai_status_reason = models.CharField(max_length=512, blank=True, default="")
    scoring_queued_at = models.DateTimeField(null=True, blank=True)
    early_scoring_queued_at = models.DateTimeField(null=True, blank=True)
    scoring_started_at = models.DateTimeField(null=True, blank=True)
    scored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "study scoring"
        indexes = [
            # The stuck-scoring sweeper: studies not done, by status.
            models.Index(
                fields=["ai_status"],
                condition=Q(ai_status__in=["pending", "queued", "scoring"]),
                name="studyscoring_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Scoring of study #{self.study_id}"


class ModelMode(models.TextChoices):
    """How a registered model takes part in scoring."""

    ACTIVE = "active", "Active"
    # Scores and records, but touches neither priority nor alerts.
    SHADOW = "shadow", "Shadow (silent)"
    DISABLED = "disabled", "Disabled"


class RegisteredModel(models.Model):
    """A model found in the models folder (RADTRIAGE_MODELS_DIR).

    Rows are kept in step with the folder by ``services.sync_registry``; the mode
    and the threshold overrides are the site's own settings and survive it.
    """

    model_id = models.CharField(max_length=64, unique=True)
    version = models.CharField(max_length=32, blank=True, default="")
    name = models.CharField(max_length=128, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    folder = models.CharField(max_length=512, blank=True, default="")
    mode = models.CharField(
        max_length=16, choices=ModelMode.choices, default=ModelMode.ACTIVE
    )
    # Why the manifest or file could not be loaded; empty when it loads.
    load_error = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "AI model"

    def __str__(self) -> str:
        return f"{self.model_id} {self.version}".strip()


class FindingSetting(models.Model):
    """One finding a registered model reports, with the site's threshold."""

    model = models.ForeignKey(
        RegisteredModel, on_delete=models.CASCADE, related_name="finding_settings"
    )
    code = models.CharField(max_length=32)
    display = models.CharField(max_length=128)
    severity = models.CharField(max_length=16, choices=choices(Severity))
    default_threshold = models.FloatField()
    threshold_override = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["model_id", "code"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "code"], name="finding_setting_unique_code"
            ),
            models.CheckConstraint(
                condition=Q(threshold_override__isnull=True)
                | Q(threshold_override__gte=0.0, threshold_override__lte=1.0),
                name="finding_setting_threshold_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.code}"

    @property
    def threshold(self) -> float:
        """The threshold in force: the site's override, else the manifest's."""
        if self.threshold_override is not None:
            return self.threshold_override
        return self.default_threshold


class ScoreStatus(models.TextChoices):
    SCORED = "scored", "Scored"
    NOT_APPLICABLE = "not_applicable", "Not applicable"
    FAILED = "failed", "Failed"


class ScoreResultQuerySet(models.QuerySet["ScoreResult"]):
    def current(self) -> ScoreResultQuerySet:
        return self.filter(is_current=True)


class ScoreResult(models.Model):
    """One model's run over one study's set of instances, with provenance.

    Unique per study, model version and instance set: a re-sent study is not
    scored again, a study that grew gets a new result that supersedes the old.
    """

    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="score_results"
    )
    model = models.ForeignKey(
        RegisteredModel, on_delete=models.PROTECT, related_name="results"
    )
    model_version = models.CharField(max_length=32)
    model_sha256 = models.CharField(max_length=64)
    series = models.ForeignKey(
        Series, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # SHA-256 over the (instance id, file sha256) pairs scored, in slice order.
    instance_set = models.CharField(max_length=64)
    instance_ids = models.JSONField(default=list, blank=True)
    instance_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=ScoreStatus.choices)
    reason = models.CharField(max_length=512, blank=True, default="")
    mode = models.CharField(max_length=16, choices=ModelMode.choices)
    device = models.CharField(max_length=16, blank=True, default="")
    duration_ms = models.PositiveIntegerField(default=0)
    is_current = models.BooleanField(default=True)
    supersedes = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    scored_at = models.DateTimeField()

    objects = ScoreResultQuerySet.as_manager()

    class Meta:
        ordering = ["-scored_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "model", "model_version", "instance_set"],
                name="score_result_once_per_instance_set",
            ),
        ]
        indexes = [
            models.Index(
                fields=["study", "model"],
                condition=Q(is_current=True),
                name="score_result_current_idx",
            )
        ]

    def __str__(self) -> str:
        return f"Result #{self.pk} of study #{self.study_id}"


class FindingQuerySet(models.QuerySet["Finding"]):
    def current(self) -> FindingQuerySet:
        return self.filter(result__is_current=True)

    def live(self) -> FindingQuerySet:
        """Current findings that may touch priority and alerts (not shadow)."""
        return self.current().filter(shadow=False)


class Finding(models.Model):
    """What a model found in a study, explained: probability, threshold, key
    slice, per-slice curve and heatmap."""

    result = models.ForeignKey(
        ScoreResult, on_delete=models.CASCADE, related_name="findings"
    )
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="findings")
    code = models.CharField(max_length=32)
    display = models.CharField(max_length=128)
    severity = models.CharField(max_length=16, choices=choices(Severity))
    probability = models.FloatField()
    threshold = models.FloatField()
    positive = models.BooleanField()
    shadow = models.BooleanField(default=False)
    key_instance = models.ForeignKey(
        Instance, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    key_sop_instance_uid = models.CharField(max_length=64, blank=True, default="")
    # Index of the key slice in slice order (0 = most inferior for axial CT).
    key_slice_index = models.IntegerField(null=True, blank=True)
    slice_probabilities = models.JSONField(default=list, blank=True)
    # Picture of the key slice with the heatmap (JPEG),
    # relative to RADTRIAGE_STORAGE_DIR.
    heatmap_path = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField()

    objects = FindingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["result", "code"], name="finding_once_per_result"
            )
        ]
        indexes = [models.Index(fields=["study", "code"], name="finding_study_idx")]

    def __str__(self) -> str:
        return f"{self.code} of study #{self.study_id}"


class ScoringFollowUp(models.Model):
    """What must still follow a committed scoring result (priority, alerts).

    Inserted in the transaction that records the result, so a worker killed
    right after that commit leaves it behind; ``inference.followups`` runs it
    (at once, else by a retried task and a sweeper) and deletes it in the
    transaction of its handlers' work. Append-only: each result adds a row and
    writes never wait on a running follow-up.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    # False when the run found nothing new (a repeated scoring): no re-alert.
    changed = models.BooleanField()
    recorded_at = models.DateTimeField()
    # Not run before this: the result's time, later the backoff after a failure.
    due_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    # The failing handler's exception type (never its message: no PHI).
    last_error = models.CharField(max_length=512, blank=True, default="")

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="scoring_followup_due_idx")]

    def __str__(self) -> str:
        return f"Follow-up #{self.pk} of study #{self.study_id}"


class ScoringLease(models.Model):
    """The lease of a study's scoring run, renewed while the run goes on.

    Taken with the claim; a study whose lease expired while it was still
    scoring lost its worker and is queued again (``inference.scoring_lease``),
    in seconds rather than after the task's time limit.
    """

    study = models.OneToOneField(
        Study, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    # The run's start, as on the study: a lease names one run.
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="scoring_lease_expiry_idx")]

    def __str__(self) -> str:
        return f"Scoring lease of study #{self.study_id}"


class ReportFindingLabel(models.Model):
    """What the study's latest report says of one finding: the truth the AI is
    monitored against (sensitivity and PPV next to the readers' feedback)."""

    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="report_labels"
    )
    code = models.CharField(max_length=32)
    label = models.CharField(max_length=16, choices=choices(ReportLabel))
    # The report's words that decided it ('"no" hemorrhage (impression)').
    explanation = models.CharField(max_length=256, blank=True, default="")
    report = models.ForeignKey(Report, on_delete=models.PROTECT, related_name="+")
    labelled_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "code"], name="report_label_unique_per_finding"
            )
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.label} for study #{self.study_id}"
