"""One scoring run: claim the study, run the models outside any transaction,
hand the outcomes to :mod:`inference.services.results`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import OperationalError, transaction

from inference import manifest as mf
from inference import preprocess, runtime, scoring_lease
from inference.models import (
    ModelMode,
    ScoreResult,
    ScoreStatus,
    StudyScoring,
)
from inference.services import _scoring_sql, claims, results
from inference.services._common import REASON_MAX, announce_changed
from inference.services.applicability import chooses, series_facts
from inference.services.jobs import (
    FindingOutcome,
    InstanceRef,
    ModelOutcome,
    ScoringJob,
    TransientScoringError,
    instance_set_digest,
)
from inference.services.model_registry import RegistryEntry, registry
from inference.vocabulary import AIStatus
from radtriage.db import recoverable_transaction
from triage.models import StudyEvent
from triage.services import record_study_events

logger = logging.getLogger(__name__)


def _claim(study_id: int, now: datetime) -> ScoringJob | None:
    # A claim lost in a crash leaves the study queued (or scoring, past the
    # time limit): the sweeper queues it again, so its commit need not wait
    # for the disk.
    with recoverable_transaction():
        claimed = claims.claim(study_id, now=now)
        if claimed is None:
            return None
        scoring_lease.take(study_id, now)
        early, body_part = claimed.early, claimed.body_part_examined
        record_study_events(
            [
                {
                    "study_id": study_id,
                    "kind": StudyEvent.Kind.SCORING_STARTED,
                    "at": now,
                    "detail": {"early": True} if early else {},
                }
            ]
        )
        series_rows = _scoring_sql.series_of_study(study_id)
        gathered: dict[int, list[InstanceRef]] = {}
        storage = Path(settings.RADTRIAGE_STORAGE_DIR)
        planes: dict[int, str] = {}
        for row in _scoring_sql.instances_of_study(study_id):
            ref = InstanceRef.of(row, storage)
            gathered.setdefault(row.series_id, []).append(ref)
            planes.setdefault(row.series_id, row.plane)
        instances = {pk: tuple(refs) for pk, refs in gathered.items()}
        # Not announced: a reader sees "queued" until the result, seconds
        # later, which is announced; the periodic refresh shows a long run.
    counts = {pk: len(refs) for pk, refs in instances.items()}
    facts = series_facts(body_part, series_rows, counts, planes)
    early_series = frozenset(s.pk for s in series_rows if s.stable) if early else None
    return ScoringJob(study_id, now, facts, instances, early_series)


def score_study(study_id: int, *, clock: Callable[[], datetime]) -> bool:
    """Score a study with every enabled model that applies; record the results.

    Idempotent: a study that is not pending or queued (already scored, being
    scored, gone) is left alone, and a model whose result for this exact set of
    instances exists is not run again. One model's failure is recorded for that
    model and never stops the others. An early run (the study still receiving,
    see :func:`~inference.services.queueing.enqueue_early_scoring`) scores only
    the models whose chosen series is complete.

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
    return [e for e in entries if chooses(e, job.series, job.early_series)]


def _store_results(
    job: ScoringJob, outcomes: list[ModelOutcome], *, now: datetime
) -> None:
    """:func:`~inference.services.results.apply_results`, unless no active model
    took part in an early run.

    Then nothing a reader sees was scored: the study's AI status goes back to
    waiting (or to "scored" where an earlier result stands) rather than "not
    applicable", and shadow results are stored without a status of their own.
    """
    if job.early_series is None or any(
        o.entry.mode == ModelMode.ACTIVE for o in outcomes
    ):
        results.apply_results(job, outcomes, now=now)
        return
    with transaction.atomic():
        standing = ScoreResult.objects.filter(
            study_id=job.study_id,
            is_current=True,
            mode=ModelMode.ACTIVE,
            status=ScoreStatus.SCORED,
        ).exists()
        # No longer this run's: apply_results then leaves the status alone.
        StudyScoring.objects.filter(
            study_id=job.study_id,
            ai_status=AIStatus.SCORING,
            scoring_started_at=job.started_at,
        ).update(
            ai_status=AIStatus.SCORED if standing else AIStatus.PENDING,
        )
        transaction.on_commit(partial(announce_changed, job.study_id), robust=True)
        if outcomes:
            results.apply_results(job, outcomes, now=now)


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
    outcome.reason = reason[:REASON_MAX]
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


def _requeue_after_transient(study_id: int, started_at: datetime) -> None:
    """Put a study whose scoring met transient trouble back to "queued"."""
    try:
        with transaction.atomic():
            StudyScoring.objects.filter(
                study_id=study_id,
                ai_status=AIStatus.SCORING,
                scoring_started_at=started_at,
            ).update(ai_status=AIStatus.QUEUED)
    except OperationalError:
        # The database itself is away: the sweeper will find the study.
        logger.warning(
            "could not requeue study_id=%s after a transient error", study_id
        )
