"""State changes of the scoring layer: registry, queueing, scoring, findings.

The heavy work (decoding, inference, heatmaps) runs outside any transaction;
each write is a short ``@transaction.atomic`` service that locks what it changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pydicom
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone

from inference import followups, preprocess, runtime, scoring_lease, scoring_sql
from inference import manifest as mf
from inference.models import (
    Finding,
    FindingSetting,
    ModelMode,
    RegisteredModel,
    ScoreResult,
    ScoreStatus,
)
from radtriage.db import insert_rows, recoverable_transaction
from triage.geometry import axial_of_plane, is_axial
from triage.models import AIStatus, Series, Study, StudyEvent
from triage.pixels import BadPixelLayout, PixelLayout
from triage.services import record_audit
from triage.signals import study_changed
from triage.vocabulary import OrderPriority, PatientClass

logger = logging.getLogger(__name__)

URGENT_QUEUE = "urgent"
ROUTINE_QUEUE = "routine"
HEATMAP_DIR = "ai-heatmaps"
_REASON_MAX = 512


class TransientScoringError(Exception):
    """Storage or database trouble that a later try may not meet; retried."""


# ----------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A registered model as the scorer needs it."""

    pk: int
    model_id: str
    mode: ModelMode
    loaded: mf.LoadedManifest | None
    error: str
    thresholds: dict[str, float]


_discovered: dict[
    str, tuple[tuple[Any, ...], list[mf.LoadedManifest], list[mf.LoadFailure]]
] = {}


# The discovery this process last wrote to the registry, per models folder.
_synced: dict[str, object] = {}


def _folder_signature(models_dir: Path) -> tuple[Any, ...]:
    """Names, sizes and times of the files under the models folder."""
    if not models_dir.is_dir():
        return ()
    items = []
    for path in sorted(models_dir.glob("*/*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        items.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(items)


def discover_models(
    models_dir: Path,
) -> tuple[list[mf.LoadedManifest], list[mf.LoadFailure]]:
    """Load the models folder, re-reading it only when its files changed."""
    signature = _folder_signature(models_dir)
    cached = _discovered.get(str(models_dir))
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    loaded, failures = mf.discover(models_dir)
    _discovered[str(models_dir)] = (signature, loaded, failures)
    return loaded, failures


@transaction.atomic
def sync_registry() -> list[RegistryEntry]:
    """Bring the registered models in step with RADTRIAGE_MODELS_DIR.

    New models are registered in RADTRIAGE_NEW_MODEL_MODE; a model whose manifest
    or file is broken keeps its row with ``load_error`` set (an error for that
    model alone); a model gone from the folder is reported as missing. The
    site's mode and threshold overrides are kept.

    Returns:
        Every registered model, loaded or not.
    """
    models_dir = Path(settings.RADTRIAGE_MODELS_DIR)
    loaded, failures = discover_models(models_dir)
    rows = {r.model_id: r for r in RegisteredModel.objects.select_for_update()}
    seen: set[str] = set()
    by_id: dict[str, mf.LoadedManifest] = {}
    for item in loaded:
        m = item.manifest
        seen.add(m.model_id)
        by_id[m.model_id] = item
        row = rows.get(m.model_id)
        if row is None:
            row = RegisteredModel.objects.create(
                model_id=m.model_id, mode=settings.RADTRIAGE_NEW_MODEL_MODE
            )
            rows[m.model_id] = row
        changed = (row.version, row.name, row.sha256, row.folder, row.load_error) != (
            m.version,
            m.name,
            m.sha256,
            str(item.folder),
            "",
        )
        if changed:
            row.version, row.name, row.sha256 = m.version, m.name, m.sha256
            row.folder, row.load_error = str(item.folder), ""
            row.save(
                update_fields=[
                    "version",
                    "name",
                    "sha256",
                    "folder",
                    "load_error",
                    "updated_at",
                ]
            )
        for finding in m.findings:
            FindingSetting.objects.update_or_create(
                model=row,
                code=finding.code,
                defaults={
                    "display": finding.display,
                    "severity": finding.severity.value,
                    "default_threshold": finding.threshold,
                },
            )
    for failure in failures:
        if failure.model_id in seen:
            continue
        seen.add(failure.model_id)
        row = rows.get(failure.model_id)
        if row is None:
            row = RegisteredModel.objects.create(
                model_id=failure.model_id, mode=settings.RADTRIAGE_NEW_MODEL_MODE
            )
            rows[failure.model_id] = row
        error = failure.error[:_REASON_MAX]
        if row.load_error != error or row.folder != str(failure.folder):
            row.load_error, row.folder = error, str(failure.folder)
            row.save(update_fields=["load_error", "folder", "updated_at"])
            logger.warning(
                "model cannot be loaded model=%s: %s", failure.model_id, error
            )
    for model_id, row in rows.items():
        if model_id not in seen and row.load_error != "model folder is missing":
            row.load_error = "model folder is missing"
            row.save(update_fields=["load_error", "updated_at"])
    return _entries(
        [_ModelRow(r.pk, r.model_id, r.mode, r.load_error) for r in rows.values()],
        by_id,
    )


@dataclass(frozen=True, slots=True)
class _ModelRow:
    """The columns of a registered model row that the registry reads."""

    pk: int
    model_id: str
    mode: str
    load_error: str


def _model_rows() -> list[_ModelRow]:
    # Read for every study scored: columns only, no model objects.
    return [
        _ModelRow(*values)
        for values in RegisteredModel.objects.values_list(
            "pk", "model_id", "mode", "load_error"
        )
    ]


def _entries(
    rows: list[_ModelRow], by_id: dict[str, mf.LoadedManifest]
) -> list[RegistryEntry]:
    thresholds: dict[int, dict[str, float]] = {}
    for setting in FindingSetting.objects.filter(
        model_id__in=[row.pk for row in rows]
    ).only("model_id", "code", "default_threshold", "threshold_override"):
        thresholds.setdefault(setting.model_id, {})[setting.code] = setting.threshold
    return [
        RegistryEntry(
            pk=row.pk,
            model_id=row.model_id,
            mode=ModelMode(row.mode),
            loaded=by_id.get(row.model_id) if not row.load_error else None,
            error=row.load_error,
            thresholds=thresholds.get(row.pk, {}),
        )
        for row in sorted(rows, key=lambda r: r.model_id)
    ]


def registry() -> list[RegistryEntry]:
    """The registered models with the site's current mode and thresholds.

    Reads only, unless the models folder changed since this process last
    synced it (or a model is not registered yet): then ``sync_registry``.
    """
    models_dir = Path(settings.RADTRIAGE_MODELS_DIR)
    loaded, failures = discover_models(models_dir)
    rows = _model_rows()
    known = {r.model_id for r in rows}
    wanted = {i.manifest.model_id for i in loaded} | {f.model_id for f in failures}
    if _synced.get(str(models_dir)) is not _discovered.get(str(models_dir)) or (
        wanted - known
    ):
        entries = sync_registry()
        _synced[str(models_dir)] = _discovered.get(str(models_dir))
        return entries
    return _entries(rows, {i.manifest.model_id: i for i in loaded})


def _model_row_for_update(model_pk: int) -> RegisteredModel:
    return RegisteredModel.objects.select_for_update().get(pk=model_pk)


@transaction.atomic
def set_model_mode(
    model_pk: int,
    mode: ModelMode,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    now: datetime,
    remote_addr: str | None = None,
) -> None:
    """Enable (active or shadow) or disable a model for this site, audited."""
    row = _model_row_for_update(model_pk)
    if row.mode == mode:
        return
    previous = row.mode
    row.mode = mode
    row.save(update_fields=["mode", "updated_at"])
    record_audit(
        user=user,
        action="ai_model.mode_changed",
        object_type="ai_model",
        object_id=row.model_id,
        now=now,
        remote_addr=remote_addr,
        detail={"from": previous, "to": mode.value, "version": row.version},
    )


@transaction.atomic
def set_threshold_override(
    setting_pk: int,
    threshold: float | None,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    now: datetime,
    remote_addr: str | None = None,
) -> None:
    """Override (or, with None, restore) a finding's operating threshold, audited.

    Args:
        setting_pk: The FindingSetting row.
        threshold: Probability in [0, 1] at and above which the finding is
            positive for this site; None goes back to the manifest's.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError("a threshold must be within [0, 1]")
    setting = (
        FindingSetting.objects.select_for_update()
        .select_related("model")
        .get(pk=setting_pk)
    )
    if setting.threshold_override == threshold:
        return
    previous = setting.threshold_override
    setting.threshold_override = threshold
    setting.save(update_fields=["threshold_override"])
    record_audit(
        user=user,
        action="ai_model.threshold_changed",
        object_type="ai_model",
        object_id=setting.model.model_id,
        now=now,
        remote_addr=remote_addr,
        detail={
            "finding": setting.code,
            "from": previous,
            "to": threshold,
            "default": setting.default_threshold,
        },
    )


# ----------------------------------------------------------------- queueing


def scoring_queue(patient_class: str, order_priority: str) -> str:
    """The Celery queue for a study: urgent for emergency patients and STAT
    orders, so an ED head CT never waits behind an outpatient backlog."""
    if patient_class == PatientClass.EMERGENCY or order_priority == OrderPriority.STAT:
        return URGENT_QUEUE
    return ROUTINE_QUEUE


def _send_score_task(study_id: int, queue: str) -> None:
    from inference.tasks import score_study

    score_study.apply_async((study_id,), queue=queue)


@transaction.atomic
def enqueue_scoring(study_id: int, *, now: datetime) -> str | None:
    """Queue a stable study for scoring on the queue its urgency calls for.

    Sets AI status "queued" and the queued time, records the event and sends the
    task once committed. A study that is not (or no longer) stable, or gone, is
    left alone.

    Returns:
        The queue name, or None when nothing was queued.
    """
    study = Study.objects.select_for_update().filter(pk=study_id).first()
    if study is None or study.stable_at is None:
        return None
    queue = scoring_queue(study.patient_class, study.order_priority)
    _mark_queued(study, queue, now)
    return queue


def _mark_queued(
    study: Study, queue: str, now: datetime, *, early_series_id: int | None = None
) -> None:
    """Set a locked study "queued", record it, and send the task once committed.

    With ``early_series_id`` the run is an early one, for that complete series.
    """
    study.ai_status = AIStatus.QUEUED
    study.ai_status_reason = ""
    study.scoring_queued_at = now
    study.version += 1
    fields = ["ai_status", "ai_status_reason", "scoring_queued_at", "version"]
    detail: dict[str, Any] = {"queue": queue}
    if early_series_id is not None:
        study.early_scoring_queued_at = now
        fields.append("early_scoring_queued_at")
        detail |= {"early": True, "series_id": early_series_id}
    study.save(update_fields=[*fields, "updated_at"])
    StudyEvent.objects.create(
        study=study, kind=StudyEvent.Kind.SCORING_QUEUED, at=now, detail=detail
    )
    transaction.on_commit(partial(_send_score_task, study.pk, queue), robust=True)
    transaction.on_commit(partial(_announce_changed, study.pk), robust=True)


def _announce_changed(study_id: int) -> None:
    study_changed.send(sender=Study, study_id=study_id)


def enqueue_early_scoring(
    study_id: int, series_id: int, *, now: datetime
) -> str | None:
    """Queue scoring of a study still receiving, because one series is complete.

    Beats the study's quiet period where the content allows: when an enabled
    (active or shadow) model's applicability, applied to the study's series as
    they stand, chooses the stable ``series_id``, that model need not wait for
    the rest of the study. The early run scores only the models whose chosen
    series is stable; when the study becomes stable its normal scoring reuses
    the results whose series is unchanged and amends the others.

    Same queue as :func:`enqueue_scoring`. Nothing is queued for a study that is
    stable (its own scoring covers it) or gone, for a series reopened since, when
    an early run is already queued (it will see this series too), or when no
    model chooses this series.

    Returns:
        The queue name, or None when nothing was queued.
    """
    facts = _current_series_facts(study_id)
    models = [e for e in registry() if e.mode != ModelMode.DISABLED]
    if not any(_chooses(entry, facts, frozenset({series_id})) for entry in models):
        return None
    return _queue_early(study_id, series_id, now)


@transaction.atomic
def _queue_early(study_id: int, series_id: int, now: datetime) -> str | None:
    study = Study.objects.select_for_update().filter(pk=study_id).first()
    if study is None or study.stable_at is not None:
        return None
    if not Series.objects.filter(
        pk=series_id, study_id=study_id, stable_at__isnull=False
    ).exists():
        return None
    if (
        study.ai_status == AIStatus.QUEUED
        and study.early_scoring_queued_at is not None
        and study.early_scoring_queued_at == study.scoring_queued_at
    ):
        return None
    queue = scoring_queue(study.patient_class, study.order_priority)
    _mark_queued(study, queue, now, early_series_id=series_id)
    return queue


def _chooses(
    entry: RegistryEntry, facts: tuple[mf.SeriesFacts, ...], series: frozenset[int]
) -> bool:
    """Whether the model would score one of ``series`` among the study's."""
    if entry.loaded is None:
        return False
    choice = mf.choose_series(entry.loaded.manifest.applicability, facts)
    return isinstance(choice, mf.Applicable) and choice.series_id in series


def _current_series_facts(study_id: int) -> tuple[mf.SeriesFacts, ...]:
    """The study's series as applicability sees them now (read, not locked)."""
    body_part = (
        Study.objects.filter(pk=study_id)
        .values_list("body_part_examined", flat=True)
        .first()
    )
    if body_part is None:
        return ()
    storage = Path(settings.RADTRIAGE_STORAGE_DIR)
    counts: dict[int, int] = {}
    firsts: dict[int, _FirstImage] = {}
    for row in scoring_sql.instances_of_study(study_id):
        counts[row.series_id] = counts.get(row.series_id, 0) + 1
        if row.series_id not in firsts:
            firsts[row.series_id] = _FirstImage(row.plane, storage / row.storage_path)
    return _series_facts(
        body_part, scoring_sql.series_of_study(study_id), counts, firsts
    )


@dataclass(frozen=True, slots=True)
class _FirstImage:
    """A series' first image in slice order, whose plane is the series'."""

    plane: str  # as recorded at ingest; "" before planes were recorded
    path: Path

    def axial(self) -> bool | None:
        if self.plane:
            return axial_of_plane(self.plane)
        return _axial(self.path)  # stored before planes were recorded


def _series_facts(
    study_body_part: str,
    series_rows: list[scoring_sql.SeriesRow],
    counts: dict[int, int],
    firsts: dict[int, _FirstImage],
) -> tuple[mf.SeriesFacts, ...]:
    # May read a header per series (images stored before planes were
    # recorded): call outside transactions.
    return tuple(
        mf.SeriesFacts(
            series_id=s.pk,
            modality=s.modality,
            body_part=s.body_part_examined or study_body_part,
            series_description=s.series_description,
            instance_count=counts.get(s.pk, 0),
            axial=first.axial() if (first := firsts.get(s.pk)) else None,
        )
        for s in series_rows
    )


def sweep_stuck_scoring(*, now: datetime, limit: int = 200) -> list[int]:
    """Queue again stable studies stuck before scoring.

    Stuck: stable and still pending (the enqueue was lost), queued for longer
    than RADTRIAGE_SCORING_STUCK_SECONDS (the task was lost), scoring for
    longer than the task's hard time limit (the worker died), or holding an
    earlier result (early, or from before late images reopened it) and not
    queued since it became stable (the enqueue was lost). A study still
    receiving is never queued here: its stability will queue it.

    Returns:
        The ids of the studies queued again.
    """
    stuck_before = now - timedelta(seconds=settings.RADTRIAGE_SCORING_STUCK_SECONDS)
    stale_before = now - timedelta(seconds=settings.RADTRIAGE_SCORE_TIME_LIMIT + 30)
    candidates = list(
        Study.objects.filter(stable_at__isnull=False)
        .filter(
            Q(ai_status=AIStatus.PENDING, stable_at__lt=stuck_before)
            | Q(ai_status=AIStatus.QUEUED, scoring_queued_at__lt=stuck_before)
            | Q(ai_status=AIStatus.QUEUED, scoring_queued_at__isnull=True)
            | Q(ai_status=AIStatus.SCORING, scoring_started_at__lt=stale_before)
            | Q(
                ai_status__in=[
                    AIStatus.SCORED,
                    AIStatus.NOT_APPLICABLE,
                    AIStatus.FAILED,
                ],
                stable_at__lt=stuck_before,
                scoring_queued_at__lt=F("stable_at"),
            )
        )
        .order_by("stable_at")
        .values_list("pk", flat=True)[:limit]
    )
    requeued = []
    for study_id in candidates:
        if enqueue_scoring(study_id, now=now) is not None:
            requeued.append(study_id)
    if requeued:
        logger.warning("re-enqueued %d stuck studies for scoring", len(requeued))
    return requeued


# ----------------------------------------------------------------- scoring


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """A stored instance of a series, as the scorer reads it (no PHI).

    ``layout``, ``order`` and ``sop_instance_uid`` are what ingest recorded;
    with them the pixels are read without parsing the file again.
    """

    pk: int
    path: Path
    sha256: str
    layout: PixelLayout | None = None
    order: float | None = None
    sop_instance_uid: str = ""

    @classmethod
    def of(cls, row: scoring_sql.InstanceRow, storage: Path) -> InstanceRef:
        """The reference to a stored instance row."""
        try:
            layout = PixelLayout.from_json(row.pixel_layout)
        except BadPixelLayout:
            layout = None  # pydicom reads the file instead
        if row.slice_position is not None:
            order: float | None = row.slice_position
        elif row.instance_number is not None:
            order = float(row.instance_number)
        else:
            order = None
        return cls(
            row.pk,
            storage / row.storage_path,
            row.sha256,
            layout,
            order,
            row.sop_instance_uid,
        )


@dataclass(frozen=True, slots=True)
class ScoringJob:
    """What one scoring run works on, read when the study was claimed."""

    study_id: int
    started_at: datetime
    series: tuple[mf.SeriesFacts, ...]
    instances: dict[int, tuple[InstanceRef, ...]]
    # An early run (the study still receiving): the series complete when it
    # was claimed; only models choosing one of them score. None: stable study.
    early_series: frozenset[int] | None = None


@dataclass(slots=True)
class FindingOutcome:
    """One finding of a scored model, before it is stored."""

    code: str
    display: str
    severity: str
    probability: float
    threshold: float
    key_index: int
    key_instance_pk: int
    key_sop_instance_uid: str
    slice_probabilities: list[float]
    heatmap_jpeg: bytes | None


@dataclass(slots=True)
class ModelOutcome:
    """What one model did with the study."""

    entry: RegistryEntry
    status: ScoreStatus
    reason: str = ""
    series_id: int | None = None
    instance_ids: list[int] = field(default_factory=list)
    instance_set: str = ""
    device: str = ""
    duration_ms: int = 0
    findings: list[FindingOutcome] = field(default_factory=list)
    reused: bool = False
    # No result row is expected for this model, version and instance set:
    # insert without looking first (a clash falls back to an update).
    insert_first: bool = True


def _claim(study_id: int, now: datetime) -> ScoringJob | None:
    stale_before = now - timedelta(seconds=settings.RADTRIAGE_SCORE_TIME_LIMIT + 30)
    # A claim lost in a crash leaves the study queued (or scoring, past the
    # time limit): the sweeper queues it again, so its commit need not wait
    # for the disk.
    with recoverable_transaction():
        # A stable study, or one whose queued scoring is early (a series a
        # model needs is complete). Otherwise one reopened by late images
        # waits for the next stability, which queues it again.
        claimed = scoring_sql.claim(
            study_id,
            now=now,
            scoring=AIStatus.SCORING,
            claimable=(AIStatus.PENDING, AIStatus.QUEUED),
            stale_before=stale_before,
            lease_live_at=now,
        )
        if claimed is None:
            return None
        scoring_lease.take(study_id, now)
        early, body_part = claimed.early, claimed.body_part_examined
        insert_rows(
            StudyEvent,
            [
                {
                    "study_id": study_id,
                    "kind": StudyEvent.Kind.SCORING_STARTED,
                    "at": now,
                    "detail": {"early": True} if early else {},
                }
            ],
        )
        series_rows = scoring_sql.series_of_study(study_id)
        gathered: dict[int, list[InstanceRef]] = {}
        storage = Path(settings.RADTRIAGE_STORAGE_DIR)
        firsts: dict[int, _FirstImage] = {}
        for row in scoring_sql.instances_of_study(study_id):
            ref = InstanceRef.of(row, storage)
            gathered.setdefault(row.series_id, []).append(ref)
            if row.series_id not in firsts:
                firsts[row.series_id] = _FirstImage(row.plane, ref.path)
        instances = {pk: tuple(refs) for pk, refs in gathered.items()}
        transaction.on_commit(partial(_announce_changed, study_id), robust=True)
    # Files are read outside the transaction.
    counts = {pk: len(refs) for pk, refs in instances.items()}
    facts = _series_facts(body_part, series_rows, counts, firsts)
    early_series = frozenset(s.pk for s in series_rows if s.stable) if early else None
    return ScoringJob(study_id, now, facts, instances, early_series)


def _axial(path: Path) -> bool | None:
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["ImageOrientationPatient"]
        )
    except (OSError, ValueError, pydicom.errors.InvalidDicomError):
        return None
    orientation = ds.get("ImageOrientationPatient")
    return is_axial([float(v) for v in orientation] if orientation else None)


def instance_set_digest(refs: tuple[InstanceRef, ...]) -> str:
    """SHA-256 over the instances' ids and file hashes, in order."""
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(f"{ref.pk}:{ref.sha256};".encode())
    return digest.hexdigest()


def score_study(study_id: int, *, clock: Callable[[], datetime]) -> bool:
    """Score a study with every enabled model that applies; record the results.

    Idempotent: a study that is not pending or queued (already scored, being
    scored, gone) is left alone, and a model whose result for this exact set of
    instances exists is not run again. One model's failure is recorded for that
    model and never stops the others. An early run (the study still receiving,
    see :func:`enqueue_early_scoring`) scores only the models whose chosen
    series is complete.

    Args:
        study_id: The study.
        clock: Returns the current aware time (``timezone.now``).

    Returns:
        Whether this call scored the study (False: nothing to do).

    Raises:
        TransientScoringError: storage or database trouble; the study is queued
            again and the caller retries.
    """
    job = _claim(study_id, clock())
    if job is None:
        return False
    try:
        entries = _models_for(job)
        decoded: dict[tuple[int, mf.PixelSpace], preprocess.SliceVolume] = {}
        # Outcomes keep copies (probabilities, pictures), never the volumes.
        with (
            scoring_lease.renewed(study_id, job.started_at),
            preprocess.reused_volumes(),
        ):
            outcomes = [
                _score_with(job, entry, decoded)
                for entry in entries
                if entry.mode != ModelMode.DISABLED
            ]
        _store_results(job, outcomes, now=clock())
    except (TransientScoringError, OperationalError) as exc:
        _requeue_after_transient(study_id, job.started_at)
        raise TransientScoringError(str(exc)) from exc
    return True


def _models_for(job: ScoringJob) -> list[RegistryEntry]:
    """The registered models a run considers (score_study skips disabled ones)."""
    entries = registry()
    if job.early_series is None:
        return entries
    return [e for e in entries if _chooses(e, job.series, job.early_series)]


def _store_results(
    job: ScoringJob, outcomes: list[ModelOutcome], *, now: datetime
) -> None:
    """:func:`apply_results`, unless no active model took part in an early run.

    Then nothing a reader sees was scored: the study's AI status goes back to
    waiting (or to "scored" where an earlier result stands) rather than "not
    applicable", and shadow results are stored without a status of their own.
    """
    if job.early_series is None or any(
        o.entry.mode == ModelMode.ACTIVE for o in outcomes
    ):
        apply_results(job, outcomes, now=now)
        return
    with transaction.atomic():
        standing = ScoreResult.objects.filter(
            study_id=job.study_id,
            is_current=True,
            mode=ModelMode.ACTIVE,
            status=ScoreStatus.SCORED,
        ).exists()
        # No longer this run's: apply_results then leaves the status alone.
        Study.objects.filter(
            pk=job.study_id,
            ai_status=AIStatus.SCORING,
            scoring_started_at=job.started_at,
        ).update(
            ai_status=AIStatus.SCORED if standing else AIStatus.PENDING,
            version=F("version") + 1,
        )
        transaction.on_commit(partial(_announce_changed, job.study_id), robust=True)
        if outcomes:
            apply_results(job, outcomes, now=now)


def _whole_study_digest(job: ScoringJob) -> str:
    """The instance set of a result about the whole study (no series chosen)."""
    return instance_set_digest(
        tuple(ref for refs in job.instances.values() for ref in refs)
    )


def _score_with(
    job: ScoringJob,
    entry: RegistryEntry,
    decoded: dict[tuple[int, mf.PixelSpace], preprocess.SliceVolume],
) -> ModelOutcome:
    if entry.loaded is None:
        return ModelOutcome(
            entry,
            ScoreStatus.FAILED,
            f"model cannot be loaded: {entry.error}",
            instance_set=_whole_study_digest(job),
        )
    manifest = entry.loaded.manifest
    choice = mf.choose_series(manifest.applicability, job.series)
    if isinstance(choice, mf.NotApplicable):
        return ModelOutcome(
            entry,
            ScoreStatus.NOT_APPLICABLE,
            choice.reason,
            instance_set=_whole_study_digest(job),
        )
    refs = job.instances.get(choice.series_id, ())
    outcome = ModelOutcome(
        entry,
        ScoreStatus.SCORED,
        series_id=choice.series_id,
        instance_set=instance_set_digest(refs),
    )
    existing_status = (
        ScoreResult.objects.filter(
            study_id=job.study_id,
            model_id=entry.pk,
            model_version=manifest.version,
            instance_set=outcome.instance_set,
        )
        .values_list("status", flat=True)
        .first()
    )
    if existing_status == ScoreStatus.SCORED:
        outcome.reused = True
        return outcome
    outcome.insert_first = existing_status is None
    started = time.perf_counter()
    try:
        key = (choice.series_id, manifest.input.pixel_space)
        volume = decoded.get(key)
        if volume is None:
            volume = preprocess.read_series(
                [
                    preprocess.SliceRef(
                        r.pk, r.path, r.layout, r.order, r.sop_instance_uid
                    )
                    for r in refs
                ],
                manifest.input.pixel_space,
            )
            decoded[key] = volume
        outcome.instance_ids = list(volume.keys)
        session = runtime.get_session(manifest, entry.loaded.model_path)
        # The one path site validation runs too (validation_report.score_cases).
        result = session.score(volume.pixels, batch=settings.RADTRIAGE_INFERENCE_BATCH)
        outcome.device = session.device
        outcome.findings = _findings(manifest, entry, volume, result)
    except FileNotFoundError:
        return _failed(
            outcome,
            "an image file is missing from storage",
        )
    except preprocess.UndecodablePixels as exc:
        return _failed(outcome, f"pixels cannot be decoded: {exc}")
    except OSError as exc:
        raise TransientScoringError(f"storage error: {exc.strerror or exc}") from exc
    except Exception as exc:
        logger.exception(
            "model failed model=%s study_id=%s", manifest.model_id, job.study_id
        )
        return _failed(outcome, f"model error: {type(exc).__name__}: {exc}")
    outcome.duration_ms = round((time.perf_counter() - started) * 1000)
    return outcome


def _failed(outcome: ModelOutcome, reason: str) -> ModelOutcome:
    outcome.status = ScoreStatus.FAILED
    outcome.reason = reason[:_REASON_MAX]
    outcome.findings = []
    return outcome


def _findings(
    manifest: mf.Manifest,
    entry: RegistryEntry,
    volume: preprocess.SliceVolume,
    result: runtime.ModelOutputs,
) -> list[FindingOutcome]:
    findings = []
    display_window = next((c.window for c in manifest.input.channels if c.window), None)
    for column, finding in enumerate(manifest.findings):
        curve = result.probabilities[:, column]
        study = preprocess.aggregate(
            curve, manifest.aggregation.method, manifest.aggregation.k
        )
        picture = None
        if result.heatmaps is not None:
            picture = _draw_heatmap(
                volume.pixels[study.key_index, 0],
                result.heatmaps[study.key_index, column],
                display_window,
            )
        findings.append(
            FindingOutcome(
                code=finding.code,
                display=finding.display,
                severity=finding.severity.value,
                probability=study.probability,
                threshold=entry.thresholds.get(finding.code, finding.threshold),
                key_index=study.key_index,
                key_instance_pk=volume.keys[study.key_index],
                key_sop_instance_uid=volume.sop_instance_uids[study.key_index],
                slice_probabilities=[round(float(v), 5) for v in curve],
                heatmap_jpeg=picture,
            )
        )
    return findings


def _draw_heatmap(
    image: preprocess.F32, heatmap: preprocess.F32, window: mf.Window | None
) -> bytes | None:
    """The key slice's overlay; None when it cannot be drawn (the finding
    stands without its picture)."""
    # Drawn here, not on a worker thread beside the database writes: handing
    # the GIL back and forth between the two cost more than it overlapped.
    try:
        return preprocess.heatmap_overlay_jpeg(image, heatmap, window)
    except Exception:
        logger.exception("heatmap overlay failed")
        return None


def _write_heatmap(study_id: int, result_pk: int, code: str, jpeg: bytes) -> str:
    relative = Path(HEATMAP_DIR) / str(study_id) / f"{result_pk}-{code}.jpg"
    target = Path(settings.RADTRIAGE_STORAGE_DIR) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as stream:
        stream.write(jpeg)
    Path(tmp).replace(target)
    return str(relative)


def _record_outcome(
    job: ScoringJob, outcome: ModelOutcome, now: datetime, previous_pk: int | None
) -> None:
    """Store one model's result and findings; supersede its older results.

    ``previous_pk``: the model's current result for the study before this run.
    """
    entry = outcome.entry
    if outcome.reused:
        ScoreResult.objects.filter(
            study_id=job.study_id,
            model_id=entry.pk,
            instance_set=outcome.instance_set,
            status=ScoreStatus.SCORED,
        ).update(is_current=True)
        ScoreResult.objects.filter(study_id=job.study_id, model_id=entry.pk).exclude(
            instance_set=outcome.instance_set, status=ScoreStatus.SCORED
        ).update(is_current=False)
        Finding.objects.filter(
            study_id=job.study_id,
            result__model_id=entry.pk,
            result__instance_set=outcome.instance_set,
        ).update(shadow=entry.mode == ModelMode.SHADOW)
        return
    manifest = entry.loaded.manifest if entry.loaded else None
    version = manifest.version if manifest else ""
    key: dict[str, Any] = {
        "study_id": job.study_id,
        "model_id": entry.pk,
        "model_version": version,
        "instance_set": outcome.instance_set,
    }
    values: dict[str, Any] = {
        "model_sha256": manifest.sha256 if manifest else "",
        "series_id": outcome.series_id,
        "instance_ids": outcome.instance_ids,
        "instance_count": len(outcome.instance_ids),
        "status": outcome.status,
        "reason": outcome.reason[:_REASON_MAX],
        "mode": entry.mode,
        "device": outcome.device,
        "duration_ms": outcome.duration_ms,
        "is_current": True,
        "scored_at": now,
    }
    inserted = (
        # Left out, without an error, when a run beside this one stored the
        # same result just now: then it is updated below.
        insert_rows(
            ScoreResult,
            [{**key, **values, "supersedes_id": previous_pk}],
            skip_conflicts=True,
        )
        if outcome.insert_first
        else []
    )
    if inserted:
        result_pk, created = inserted[0], True
    else:
        result, created = ScoreResult.objects.update_or_create(**key, defaults=values)
        result_pk = result.pk
        if created and previous_pk is not None:
            result.supersedes_id = previous_pk
            result.save(update_fields=["supersedes"])
        if not created:
            result.findings.all().delete()
    if previous_pk is not None:  # else no other result of this model is current
        ScoreResult.objects.filter(
            study_id=job.study_id, model_id=entry.pk, is_current=True
        ).exclude(pk=result_pk).update(is_current=False)
    insert_rows(
        Finding,
        [
            {
                "result_id": result_pk,
                "study_id": job.study_id,
                "code": f.code,
                "display": f.display,
                "severity": f.severity,
                "probability": f.probability,
                "threshold": f.threshold,
                "positive": f.probability >= f.threshold,
                "shadow": entry.mode == ModelMode.SHADOW,
                "key_instance_id": f.key_instance_pk,
                "key_sop_instance_uid": f.key_sop_instance_uid,
                "key_slice_index": f.key_index,
                "slice_probabilities": f.slice_probabilities,
                "heatmap_path": (
                    _write_heatmap(job.study_id, result_pk, f.code, f.heatmap_jpeg)
                    if f.heatmap_jpeg is not None
                    else ""
                ),
                "created_at": now,
            }
            for f in outcome.findings
        ],
    )
    logger.info(
        "model %s %s on study_id=%s: %s",
        entry.model_id,
        version,
        job.study_id,
        outcome.status,
    )


@transaction.atomic
def apply_results(
    job: ScoringJob, outcomes: list[ModelOutcome], *, now: datetime
) -> None:
    """Store every model's result and findings, set the study's AI status and
    announce it, in one transaction.

    Only active models decide the status (shadow models score silently): scored
    when one scored, failed when none scored and one failed, otherwise not
    applicable; the reason names each model's trouble. A study queued again
    while this run was going (it grew) keeps its new status.
    """
    # Each model's current result, locked, in one query for all models.
    previous: dict[int, int] = {}
    for model_pk, result_pk in (
        ScoreResult.objects.select_for_update()
        .filter(study_id=job.study_id, is_current=True)
        .order_by("-scored_at", "-pk")
        .values_list("model_id", "pk")
    ):
        previous.setdefault(model_pk, result_pk)
    for outcome in outcomes:
        _record_outcome(job, outcome, now, previous.get(outcome.entry.pk))
    # Only the columns decided on: this runs for every study scored.
    row = (
        Study.objects.select_for_update()
        .filter(pk=job.study_id)
        .values_list("ai_status", "scoring_started_at", "scored_at")
        .first()
    )
    if row is None:
        return
    ai_status, scoring_started_at, scored_at = row
    active = [o for o in outcomes if o.entry.mode == ModelMode.ACTIVE]
    scored = [o for o in active if o.status == ScoreStatus.SCORED]
    failed = [o for o in active if o.status == ScoreStatus.FAILED]
    if scored:
        status, kind = AIStatus.SCORED, StudyEvent.Kind.SCORED
        reason = "; ".join(f"{o.entry.model_id} failed: {o.reason}" for o in failed)
    elif failed:
        status, kind = AIStatus.FAILED, StudyEvent.Kind.SCORING_FAILED
        reason = "; ".join(f"{o.entry.model_id}: {o.reason}" for o in failed)
    else:
        status, kind = AIStatus.NOT_APPLICABLE, StudyEvent.Kind.NOT_APPLICABLE
        reasons = [f"{o.entry.model_id}: {o.reason}" for o in active]
        reason = "; ".join(reasons) if reasons else "no active AI model for this study"
    # New findings (or none to show): what may alert. A repeated scoring of the
    # same instances reuses its results and changes nothing.
    changed = not scored or any(not o.reused for o in scored)
    if ai_status == AIStatus.SCORING and scoring_started_at == job.started_at:
        was_scored = scored_at is not None
        # Turnaround counts from the first result readers could see: a result
        # reused unchanged (an early one confirmed) keeps its time.
        if status == AIStatus.SCORED and (changed or not was_scored):
            scored_at = now
        Study.objects.filter(pk=job.study_id).update(
            ai_status=status,
            ai_status_reason=reason[:_REASON_MAX],
            scored_at=scored_at,
            version=F("version") + 1,
            updated_at=timezone.now(),
        )
        detail = {
            "models": {
                o.entry.model_id: {"status": o.status.value, "mode": o.entry.mode.value}
                for o in outcomes
            },
            "positive": sorted(
                f"{o.entry.model_id}:{f.code}"
                for o in scored
                for f in o.findings
                if f.probability >= f.threshold
            ),
            "amended": changed and was_scored,
        }
        insert_rows(
            StudyEvent,
            [{"study_id": job.study_id, "kind": kind, "at": now, "detail": detail}],
        )
    # Priority and alerts follow durably: recorded here, run once committed.
    followups.record(job.study_id, changed=changed, now=now)


def _requeue_after_transient(study_id: int, started_at: datetime) -> None:
    """Put a study whose scoring met transient trouble back to "queued"."""
    try:
        with transaction.atomic():
            Study.objects.filter(
                pk=study_id, ai_status=AIStatus.SCORING, scoring_started_at=started_at
            ).update(ai_status=AIStatus.QUEUED, version=F("version") + 1)
    except OperationalError:
        # The database itself is away: the sweeper will find the study.
        logger.warning(
            "could not requeue study_id=%s after a transient error", study_id
        )


@transaction.atomic
def record_scoring_failure(study_id: int, reason: str, *, now: datetime) -> None:
    """Mark a study's AI screening failed with a reason readers see.

    For failures outside the models: retries exhausted, time limit exceeded.
    """
    study = Study.objects.select_for_update().filter(pk=study_id).first()
    if study is None or study.ai_status in (AIStatus.SCORED, AIStatus.NOT_APPLICABLE):
        return
    study.ai_status = AIStatus.FAILED
    study.ai_status_reason = reason[:_REASON_MAX]
    study.version += 1
    study.save(update_fields=["ai_status", "ai_status_reason", "version", "updated_at"])
    StudyEvent.objects.create(
        study=study,
        kind=StudyEvent.Kind.SCORING_FAILED,
        at=now,
        detail={"reason": reason[:200]},
    )
    followups.record(study.pk, changed=True, now=now)
