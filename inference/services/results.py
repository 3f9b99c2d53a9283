"""Storing a run's results and findings, and the study's AI status that follows."""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from inference import followups
from inference.models import (
    Finding,
    ModelMode,
    ScoreResult,
    ScoreStatus,
    StudyScoring,
)
from inference.services._common import REASON_MAX, lock_scoring
from inference.services.jobs import ModelOutcome, ScoringJob
from inference.vocabulary import AIStatus
from radtriage.db import insert_rows
from triage.models import StudyEvent
from triage.services import record_study_event, record_study_events

logger = logging.getLogger(__name__)


HEATMAP_DIR = "ai-heatmaps"


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
        "reason": outcome.reason[:REASON_MAX],
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
        StudyScoring.objects.select_for_update()
        .filter(study_id=job.study_id)
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
        StudyScoring.objects.filter(study_id=job.study_id).update(
            ai_status=status, ai_status_reason=reason[:REASON_MAX], scored_at=scored_at
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
        record_study_events(
            [{"study_id": job.study_id, "kind": kind, "at": now, "detail": detail}]
        )
    # Priority and alerts follow durably: recorded here, run once committed.
    followups.record(job.study_id, changed=changed, now=now)


@transaction.atomic
def record_scoring_failure(study_id: int, reason: str, *, now: datetime) -> None:
    """Mark a study's AI screening failed with a reason readers see.

    For failures outside the models: retries exhausted, time limit exceeded.
    """
    scoring = lock_scoring(study_id)
    if scoring is None or scoring.ai_status in (
        AIStatus.SCORED,
        AIStatus.NOT_APPLICABLE,
    ):
        return
    scoring.ai_status = AIStatus.FAILED
    scoring.ai_status_reason = reason[:REASON_MAX]
    scoring.save(update_fields=["ai_status", "ai_status_reason"])
    record_study_event(
        study_id,
        StudyEvent.Kind.SCORING_FAILED,
        at=now,
        detail={"reason": reason[:200]},
    )
    followups.record(study_id, changed=True, now=now)
