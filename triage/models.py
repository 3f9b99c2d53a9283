"""Patients, studies, series and instances as received, with every state change
time-stamped for the turnaround reports."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from triage.roles import STUDY_PERMISSIONS
from triage.vocabulary import (
    IntakeSource,
    OrderPriority,
    OrderStatus,
    PatientClass,
    ReportStatus,
    choices,
)


class Patient(models.Model):
    """The minimum of PHI needed to show a study to its readers."""

    patient_id = models.CharField(max_length=64)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True, default="")
    patient_name = models.CharField(max_length=324, blank=True, default="")
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["patient_id", "issuer_of_patient_id"],
                name="patient_unique_id_per_issuer",
            )
        ]

    def __str__(self) -> str:
        # Never the name or identifier: this string ends up in logs and admin titles.
        return f"Patient #{self.pk}"


class Study(models.Model):
    """One imaging study, keyed by its StudyInstanceUID."""

    study_instance_uid = models.CharField(max_length=64, unique=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="studies"
    )
    accession_number = models.CharField(max_length=64, blank=True, default="")
    # DICOM ModalitiesInStudy, backslash-separated as on the wire ("CT\\SR").
    modalities = models.CharField(max_length=64, blank=True, default="")
    body_part_examined = models.CharField(max_length=64, blank=True, default="")
    study_description = models.CharField(max_length=256, blank=True, default="")
    study_date = models.DateField(null=True, blank=True)
    study_time = models.TimeField(null=True, blank=True)
    patient_class = models.CharField(
        max_length=16, choices=choices(PatientClass), default=PatientClass.UNKNOWN
    )
    order_priority = models.CharField(
        max_length=16, choices=choices(OrderPriority), default=OrderPriority.ROUTINE
    )
    instance_count = models.PositiveIntegerField(default=0)

    # The arrival timeline. Reports compute turnaround from these with the scoring
    # and reading timelines their owners keep (inference.StudyScoring,
    # worklist.WorklistEntry).
    acquired_at = models.DateTimeField(null=True, blank=True)
    first_instance_received_at = models.DateTimeField(null=True, blank=True)
    last_instance_received_at = models.DateTimeField(null=True, blank=True)
    stable_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        permissions = STUDY_PERMISSIONS
        indexes = [
            # The stability sweep: studies still receiving, by last arrival.
            models.Index(
                fields=["last_instance_received_at"],
                condition=Q(stable_at__isnull=True),
                name="study_unstable_idx",
            ),
            models.Index(fields=["accession_number"], name="study_accession_idx"),
            models.Index(fields=["study_date"], name="study_date_idx"),
            # Reports: studies by the day their first image arrived.
            models.Index(
                fields=["first_instance_received_at"], name="study_received_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Study #{self.pk}"

    @property
    def modality_list(self) -> list[str]:
        return [m for m in self.modalities.split("\\") if m]


class Order(models.Model):
    """One imaging order from the RIS (HL7, REST or FHIR), keyed by accession.

    PHI. Written only by ``triage.orders``. The order may arrive before its
    study's images (``study`` empty) or after them; whichever comes second is
    matched by accession number (and Study Instance UID when both carry one).
    What feeds the priority (patient class, order priority) is also copied to
    the study; what people read (reason, location, ordering provider, call-back
    number, cancel reason) stays here, reachable as ``study.order``.
    """

    accession_number = models.CharField(max_length=64, unique=True)
    study_instance_uid = models.CharField(max_length=64, blank=True, default="")
    placer_order_number = models.CharField(max_length=64, blank=True, default="")
    filler_order_number = models.CharField(max_length=64, blank=True, default="")
    study = models.OneToOneField(
        Study,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="order",
    )
    patient_id = models.CharField(max_length=64)
    issuer_of_patient_id = models.CharField(max_length=64, blank=True, default="")
    patient_name = models.CharField(max_length=324, blank=True, default="")
    patient_birth_date = models.DateField(null=True, blank=True)
    patient_sex = models.CharField(max_length=16, blank=True, default="")
    patient_class = models.CharField(
        max_length=16, choices=choices(PatientClass), default=PatientClass.UNKNOWN
    )
    order_priority = models.CharField(
        max_length=16, choices=choices(OrderPriority), default=OrderPriority.ROUTINE
    )
    assigned_location = models.CharField(max_length=128, blank=True, default="")
    procedure_code = models.CharField(max_length=64, blank=True, default="")
    procedure_text = models.CharField(max_length=256, blank=True, default="")
    reason_for_study = models.TextField(blank=True, default="")
    ordering_provider = models.CharField(max_length=256, blank=True, default="")
    callback_number = models.CharField(max_length=64, blank=True, default="")
    ordered_at = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=choices(IntakeSource))
    status = models.CharField(
        max_length=16, choices=choices(OrderStatus), default=OrderStatus.SCHEDULED
    )
    cancel_reason = models.CharField(max_length=256, blank=True, default="")
    received_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["patient_id"], name="order_patient_idx"),
        ]

    def __str__(self) -> str:
        # Never the accession or the patient: this string ends up in logs.
        return f"Order #{self.pk}"


class Series(models.Model):
    """One series of a study, keyed by its SeriesInstanceUID."""

    series_instance_uid = models.CharField(max_length=64, unique=True)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    modality = models.CharField(max_length=16, blank=True, default="")
    series_number = models.IntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=256, blank=True, default="")
    body_part_examined = models.CharField(max_length=64, blank=True, default="")
    manufacturer = models.CharField(max_length=128, blank=True, default="")
    manufacturer_model_name = models.CharField(max_length=128, blank=True, default="")
    instance_count = models.PositiveIntegerField(default=0)
    first_instance_received_at = models.DateTimeField(null=True, blank=True)
    last_instance_received_at = models.DateTimeField(null=True, blank=True)
    # Set when the series alone has been quiet long enough (triage.stability), so
    # a model needing only this series may start; cleared by a late instance.
    stable_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "series"
        indexes = [
            # The stability sweep: series still receiving, by last arrival.
            models.Index(
                fields=["last_instance_received_at"],
                condition=Q(stable_at__isnull=True),
                name="series_unstable_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Series #{self.pk}"


class Instance(models.Model):
    """One stored SOP instance: where its bytes are and what they were."""

    sop_instance_uid = models.CharField(max_length=64, unique=True)
    series = models.ForeignKey(
        Series, on_delete=models.CASCADE, related_name="instances"
    )
    sop_class_uid = models.CharField(max_length=64)
    transfer_syntax_uid = models.CharField(max_length=64)
    instance_number = models.IntegerField(null=True, blank=True)
    # Position along the slice normal in mm, for ordering slices without reading files.
    slice_position = models.FloatField(null=True, blank=True)
    # triage.geometry.AXIAL, OTHER or UNKNOWN, so that applicability needs no
    # file read.
    plane = models.CharField(max_length=8, blank=True, default="")
    rows = models.PositiveIntegerField(null=True, blank=True)
    columns = models.PositiveIntegerField(null=True, blank=True)
    # triage.pixels.PixelLayout as JSON: where the file's plain pixels are, so
    # scoring reads them without parsing the file again. Null: decode with pydicom.
    pixel_layout = models.JSONField(null=True, blank=True)
    # Relative to RADTRIAGE_STORAGE_DIR, so storage can move.
    storage_path = models.CharField(max_length=512)
    size_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    received_at = models.DateTimeField()
    replaced_at = models.DateTimeField(null=True, blank=True)
    replacement_count = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["series", "slice_position"], name="instance_order_idx")
        ]

    def __str__(self) -> str:
        return f"Instance #{self.pk}"


class StudyEvent(models.Model):
    """Append-only history of a study: every transition, with time and actor."""

    class Kind(models.TextChoices):
        RECEIVED = "received", "First instance received"
        ORDER_RECEIVED = "order_received", "Order received"
        ORDER_UPDATED = "order_updated", "Order details updated"
        ORDER_CANCELLED = "order_cancelled", "Order cancelled"
        PATIENT_MERGED = "patient_merged", "Patient merged"
        INSTANCE_REPLACED = "instance_replaced", "Instance replaced"
        STABLE = "stable", "Stable"
        REOPENED = "reopened", "Reopened by late instances"
        SCORING_QUEUED = "scoring_queued", "Scoring queued"
        SCORING_STARTED = "scoring_started", "Scoring started"
        SCORED = "scored", "Scored"
        SCORING_FAILED = "scoring_failed", "Scoring failed"
        NOT_APPLICABLE = "not_applicable", "No applicable model"
        OPENED = "opened", "Opened"
        CLAIMED = "claimed", "Claimed"
        RELEASED = "released", "Released"
        PRELIMINARY = "preliminary", "Preliminary report"
        FINAL = "final", "Final report"
        CORRECTED = "corrected", "Corrected report"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["study", "at"], name="studyevent_study_at_idx")]
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.kind} of study #{self.study_id} at {self.at.isoformat()}"


class Report(models.Model):
    """A radiology report as the RIS sent it: each version kept (PHI).

    Append-only: a preliminary, the final and each correction are rows of
    their own, so the timeline and the AI monitoring can show what was said
    when. A report is of one study, matched by accession number.
    """

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="reports")
    status = models.CharField(max_length=16, choices=choices(ReportStatus))
    # When the RIS says the report reached this status (OBR-22 / OBX-14).
    reported_at = models.DateTimeField()
    received_at = models.DateTimeField()
    source = models.CharField(max_length=8, choices=choices(IntakeSource))
    text = models.TextField(blank=True, default="")
    author = models.CharField(max_length=256, blank=True, default="")
    # SHA-256 of status, time and text: a report sent again is not a new version.
    digest = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["study", "digest"], name="report_unique_version_per_study"
            )
        ]
        indexes = [
            models.Index(fields=["study", "reported_at"], name="report_study_at_idx")
        ]
        ordering = ["reported_at", "pk"]

    def __str__(self) -> str:
        return f"{self.status} report #{self.pk} of study #{self.study_id}"


class AuditEvent(models.Model):
    """Who looked at or changed what: every PHI access is recorded here."""

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True, default="")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["object_type", "object_id"], name="audit_object_idx")
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}:{self.object_id}"


class WorkerHeartbeat(models.Model):
    """Last time each Celery worker ran the periodic heartbeat task."""

    hostname = models.CharField(max_length=255, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.hostname


class HL7Message(models.Model):
    """One HL7 v2 message as received (PHI), with what became of it.

    Stored in a transaction of its own before it is applied and acknowledged,
    so a message is never lost: a row still ``pending`` after a crash is
    replayed by ``manage.py hl7_replay``. Append-only: a row's outcome moves
    once, from pending; a repeated control id gets a ``duplicate`` row of its
    own and changes nothing else.
    """

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        APPLIED = "applied", "Applied (AA)"
        REFUSED = "refused", "Refused: could not be applied (AE)"
        REJECTED = "rejected", "Rejected: unreadable or unsupported (AR)"
        DUPLICATE = "duplicate", "Duplicate control id"

    raw = models.TextField()
    received_at = models.DateTimeField()
    # The peer's host only: where a message came from, not a connection trace.
    remote_host = models.CharField(max_length=255, blank=True, default="")
    message_type = models.CharField(max_length=16, blank=True, default="")
    trigger_event = models.CharField(max_length=16, blank=True, default="")
    control_id = models.CharField(max_length=199, blank=True, default="")
    sending_application = models.CharField(max_length=227, blank=True, default="")
    sending_facility = models.CharField(max_length=227, blank=True, default="")
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.PENDING
    )
    ack_code = models.CharField(max_length=2, blank=True, default="")
    # Why, in words that name fields, never their values: shown in MSA-3.
    outcome_detail = models.CharField(max_length=255, blank=True, default="")
    error_code = models.PositiveSmallIntegerField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    duplicate_of = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="duplicates",
    )

    class Meta:
        verbose_name = "HL7 message"
        constraints = [
            # Idempotence on MSH-10 per sender. Rejected messages (AR) were not
            # accepted, so a corrected resend under the same id is read anew.
            models.UniqueConstraint(
                fields=["sending_application", "sending_facility", "control_id"],
                condition=~Q(outcome__in=["duplicate", "rejected"]) & ~Q(control_id=""),
                name="hl7message_unique_control_id",
            )
        ]
        indexes = [
            models.Index(
                fields=["received_at"],
                condition=Q(outcome="pending"),
                name="hl7message_pending_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"HL7 message #{self.pk}"
