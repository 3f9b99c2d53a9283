"""The reading workflow and the priority of studies: every change goes through here.

Each service locks the study it changes, time-stamps the transition (a
``StudyEvent``), writes the audit row in the same transaction and announces the
change to connected worklists once the transaction commits.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.models import User as DjangoUser
from django.db import transaction
from django.db.models import Q

from inference.models import Finding
from triage.models import AIStatus, ReadingStatus, Study, StudyEvent
from triage.services import record_audit
from triage.vocabulary import OrderPriority, PatientClass, Severity
from worklist import broadcast
from worklist.alerts import services as alerts
from worklist.models import AIFeedback, FeedbackVerdict, WorklistEntry, WorklistFilter
from worklist.priority import (
    FindingInput,
    PriorityInputs,
    PriorityScore,
    PriorityWeights,
    compute_priority,
    waiting_start,
)

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser

#: How much of the AI points each finding severity can earn (x probability).
SEVERITY_WEIGHTS: dict[str, float] = {
    Severity.CRITICAL: 1.0,
    Severity.URGENT: 0.6,
    Severity.NON_URGENT: 0.3,
}
#: Studies re-scored per transaction by the periodic refresh.
REFRESH_CHUNK = 500


class WorkflowError(Exception):
    """A reading-workflow action that cannot be done; the message says why."""


class StudyAlreadyClaimed(WorkflowError):
    """Another radiologist holds the study."""


class StudyNotClaimed(WorkflowError):
    """The action needs the study to be claimed by the acting user."""


class StudyIsFinal(WorkflowError):
    """The study is reported: nothing more to do on the worklist."""


# --- priority ----------------------------------------------------------------


def priority_weights() -> PriorityWeights:
    """The configured weights (settings RADTRIAGE_PRIORITY_* and SLA targets)."""
    defaults = PriorityWeights()
    sla: dict[str, float] = getattr(settings, "RADTRIAGE_SLA_MINUTES", {})
    return PriorityWeights(
        order_points={
            OrderPriority(k): v
            for k, v in settings.RADTRIAGE_PRIORITY_ORDER_POINTS.items()
        },
        class_points={
            PatientClass(k): v
            for k, v in settings.RADTRIAGE_PRIORITY_CLASS_POINTS.items()
        },
        ai_points=settings.RADTRIAGE_PRIORITY_AI_POINTS,
        waiting_points=settings.RADTRIAGE_PRIORITY_WAITING_POINTS,
        sla_minutes={
            pc: float(sla.get(pc.value, defaults.sla_for(pc))) for pc in PatientClass
        },
        max_wait_factor=settings.RADTRIAGE_PRIORITY_MAX_WAIT_FACTOR,
        age_points=settings.RADTRIAGE_PRIORITY_AGE_POINTS,
    )


def _age_years(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(years, 0)


def findings_for(study_ids: list[int]) -> dict[int, tuple[FindingInput, ...]]:
    """The live AI findings of studies (current, not shadow), by study id."""
    found: dict[int, list[FindingInput]] = {}
    for finding in Finding.objects.live().filter(study_id__in=study_ids):
        found.setdefault(finding.study_id, []).append(
            FindingInput(
                code=finding.code,
                display=finding.display,
                severity=SEVERITY_WEIGHTS.get(finding.severity, 1.0),
                probability=finding.probability,
                positive=finding.positive,
                shadow=finding.shadow,
            )
        )
    return {study_id: tuple(items) for study_id, items in found.items()}


def _score(
    study: Study,
    findings: tuple[FindingInput, ...],
    weights: PriorityWeights,
    now: datetime,
) -> PriorityScore:
    waiting_since = waiting_start(study.acquired_at, study.first_instance_received_at)
    inputs = PriorityInputs(
        order_priority=OrderPriority(study.order_priority),
        patient_class=PatientClass(study.patient_class),
        waiting_since=waiting_since,
        findings=findings,
        patient_age_years=_age_years(
            study.patient.patient_birth_date, study.study_date or now.date()
        ),
    )
    return compute_priority(inputs, weights, now=now)


def _apply_score(study: Study, score: PriorityScore) -> bool:
    """Set the study's score fields; whether they changed. The caller saves."""
    components = [c.as_dict() for c in score.components]
    changed = (
        study.priority_score != score.total or study.priority_components != components
    )
    study.priority_score = score.total
    study.priority_components = components
    return changed


def _set_ai_flag(study_id: int, flagged: bool) -> None:
    WorklistEntry.objects.update_or_create(
        study_id=study_id, defaults={"ai_flagged": flagged}
    )


@transaction.atomic
def recompute_priority(study_id: int, *, now: datetime) -> PriorityScore | None:
    """Recompute one study's priority and announce the study to worklists.

    Called on every event that changes a component (order context, stability,
    scoring, reading state).

    Returns:
        The new score, or None when the study is gone or final (its score stays).
    """
    study = (
        Study.objects.select_for_update(of=("self",))
        .select_related("patient")
        .filter(pk=study_id)
        .first()
    )
    if study is None:
        return None
    if study.reading_status == ReadingStatus.FINAL:
        broadcast.queue_study_removed(study.pk)
        return None
    findings = findings_for([study.pk]).get(study.pk, ())
    score = _score(study, findings, priority_weights(), now)
    changed = _apply_score(study, score)
    # Scoring finished (or images settled): an unclaimed study moves on to ready.
    if study.claimed_by_id is None and study.reading_status in _WAITING:
        status = _unclaimed_status(study)
        changed |= status != study.reading_status
        study.reading_status = status
    if changed:
        study.version += 1
        study.save(
            update_fields=[
                "priority_score",
                "priority_components",
                "reading_status",
                "version",
                "updated_at",
            ]
        )
    # Flagged: the AI found something, even where the wait cap outranks it.
    _set_ai_flag(study.pk, any(f.positive and not f.shadow for f in findings))
    broadcast.queue_study_changed(study.pk, study.version, study.priority_score)
    return score


def refresh_priorities(*, now: datetime) -> int:
    """Re-score every study not final, for the time it has waited.

    Runs periodically; chunked so no transaction holds many locks. Only the score
    changes (not the version: the rows' content is the same), and each chunk's
    changes go out as one delta.

    Returns:
        How many studies' scores changed.
    """
    weights = priority_weights()
    ids = list(Study.objects.not_final().order_by("pk").values_list("pk", flat=True))
    changed = 0
    for start in range(0, len(ids), REFRESH_CHUNK):
        changed += _refresh_chunk(ids[start : start + REFRESH_CHUNK], weights, now)
    return changed


@transaction.atomic
def _refresh_chunk(ids: list[int], weights: PriorityWeights, now: datetime) -> int:
    studies = list(
        Study.objects.select_for_update(of=("self",))
        .select_related("patient")
        .filter(pk__in=ids)
        .not_final()
    )
    findings = findings_for([s.pk for s in studies])
    dirty: list[Study] = []
    for study in studies:
        score = _score(study, findings.get(study.pk, ()), weights, now)
        before = study.priority_score
        if _apply_score(study, score):
            dirty.append(study)
            if round(before) != round(study.priority_score):
                broadcast.queue_study_changed(
                    study.pk, study.version, study.priority_score
                )
    Study.objects.bulk_update(dirty, ["priority_score", "priority_components"])
    return len(dirty)


# --- the reading workflow -------------------------------------------------------


#: Reading states the system moves a study between until someone claims it.
_WAITING = frozenset(
    {ReadingStatus.AWAITING_IMAGES, ReadingStatus.AWAITING_AI, ReadingStatus.READY}
)


def _lock(study_id: int) -> Study:
    return Study.objects.select_for_update(of=("self",)).get(pk=study_id)


def _unclaimed_status(study: Study) -> ReadingStatus:
    """Where a study stands when nobody holds it."""
    if study.preliminary_at is not None:
        return ReadingStatus.PRELIMINARY
    if study.stable_at is None:
        return ReadingStatus.AWAITING_IMAGES
    if study.ai_status in (AIStatus.PENDING, AIStatus.QUEUED, AIStatus.SCORING):
        return ReadingStatus.AWAITING_AI
    return ReadingStatus.READY


def _touch(study_id: int, now: datetime) -> None:
    WorklistEntry.objects.update_or_create(
        study_id=study_id, defaults={"last_activity_at": now}
    )


def _event(
    study: Study, kind: str, user: User | None, now: datetime, **detail: Any
) -> None:
    actor = user if isinstance(user, DjangoUser) else None
    StudyEvent.objects.create(
        study=study, kind=kind, at=now, actor=actor, detail=detail
    )


def _audit(user: User | None, action: str, study: Study, now: datetime) -> None:
    record_audit(
        user=user, action=action, object_type="study", object_id=str(study.pk), now=now
    )


def _announce(study: Study) -> None:
    if study.reading_status == ReadingStatus.FINAL:
        broadcast.queue_study_removed(study.pk)
    else:
        broadcast.queue_study_changed(study.pk, study.version, study.priority_score)


@transaction.atomic
def claim_study(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Claim a study for reading: exactly one radiologist wins a race.

    The row lock serialises concurrent claims; the second sees the first's claim.
    Claiming a study one already holds changes nothing.

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already reported.
        Study.DoesNotExist: no such study.
    """
    study = _lock(study_id)
    if study.reading_status == ReadingStatus.FINAL:
        raise StudyIsFinal("this study is already final")
    if study.claimed_by_id is not None:
        if study.claimed_by_id == user.pk:
            return study
        raise StudyAlreadyClaimed("another radiologist is reading this study")
    study.claimed_by_id = user.pk
    study.claimed_at = now
    study.reading_status = ReadingStatus.IN_PROGRESS
    study.version += 1
    study.save(
        update_fields=[
            "claimed_by",
            "claimed_at",
            "reading_status",
            "version",
            "updated_at",
        ]
    )
    _event(study, StudyEvent.Kind.CLAIMED, user, now)
    _audit(user, "claim_study", study, now)
    _touch(study.pk, now)
    _announce(study)
    return study


def _release(study: Study, user: User | None, now: datetime, reason: str) -> None:
    study.claimed_by = None
    study.reading_status = _unclaimed_status(study)
    study.version += 1
    study.save(update_fields=["claimed_by", "reading_status", "version", "updated_at"])
    _event(study, StudyEvent.Kind.RELEASED, user, now, reason=reason)
    _audit(user, "release_study", study, now)
    WorklistEntry.objects.filter(study_id=study.pk).update(last_activity_at=None)
    _announce(study)


@transaction.atomic
def release_study(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Give a claimed study back to the list.

    Raises:
        StudyNotClaimed: the user does not hold it.
    """
    study = _lock(study_id)
    if study.claimed_by_id is None or study.claimed_by_id != user.pk:
        raise StudyNotClaimed("you do not hold this study")
    if study.reading_status == ReadingStatus.FINAL:
        raise StudyIsFinal("this study is already final")
    _release(study, user, now, "released")
    return study


def release_inactive_claims(*, now: datetime) -> list[int]:
    """Release claims with no activity for RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES.

    Returns:
        The IDs of the studies released.
    """
    cutoff = now - timedelta(minutes=settings.RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES)
    candidates = (
        Study.objects.filter(claimed_by__isnull=False)
        .exclude(reading_status=ReadingStatus.FINAL)
        .filter(
            Q(worklist_entry__last_activity_at__lt=cutoff)
            | Q(worklist_entry__last_activity_at__isnull=True, claimed_at__lt=cutoff)
        )
        .values_list("pk", flat=True)
    )
    return [pk for pk in list(candidates) if _release_if_inactive(pk, cutoff, now)]


@transaction.atomic
def _release_if_inactive(study_id: int, cutoff: datetime, now: datetime) -> bool:
    study = _lock(study_id)
    entry = WorklistEntry.objects.filter(study_id=study_id).first()
    last = (
        entry.last_activity_at if entry and entry.last_activity_at else study.claimed_at
    )
    if study.claimed_by_id is None or study.reading_status == ReadingStatus.FINAL:
        return False
    if last is not None and last >= cutoff:
        return False
    logger.info("releasing inactive claim study_id=%s", study_id)
    _release(study, None, now, "inactivity")
    return True


@transaction.atomic
def open_study(
    study_id: int,
    user: AbstractBaseUser,
    *,
    now: datetime,
    remote_addr: str | None = None,
) -> str:
    """Record that a radiologist opened a study in the viewer.

    Returns:
        The viewer URL for the study (RADTRIAGE_VIEWER_URL_TEMPLATE).
    """
    study = _lock(study_id)
    if study.first_opened_at is None:
        study.first_opened_at = now
        study.save(update_fields=["first_opened_at", "updated_at"])
    _event(study, StudyEvent.Kind.OPENED, user, now)
    record_audit(
        user=user,
        action="open_study",
        object_type="study",
        object_id=str(study.pk),
        now=now,
        remote_addr=remote_addr,
    )
    if study.claimed_by_id == user.pk:
        _touch(study.pk, now)
    template: str = settings.RADTRIAGE_VIEWER_URL_TEMPLATE
    return template.format(
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number,
        study_id=study.pk,
    )


def _finish(study_id: int, user: AbstractBaseUser, now: datetime) -> Study:
    study = _lock(study_id)
    if study.reading_status == ReadingStatus.FINAL:
        raise StudyIsFinal("this study is already final")
    if study.claimed_by_id is not None and study.claimed_by_id != user.pk:
        raise StudyAlreadyClaimed("another radiologist is reading this study")
    if study.claimed_by_id is None:
        study.claimed_by_id = user.pk
        study.claimed_at = now
    return study


@transaction.atomic
def mark_preliminary(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Record a preliminary report by the reader (claiming the study if free).

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already reported.
    """
    study = _finish(study_id, user, now)
    study.preliminary_at = study.preliminary_at or now
    study.reading_status = ReadingStatus.PRELIMINARY
    study.version += 1
    study.save(
        update_fields=[
            "claimed_by",
            "claimed_at",
            "preliminary_at",
            "reading_status",
            "version",
            "updated_at",
        ]
    )
    _event(study, StudyEvent.Kind.PRELIMINARY, user, now, source="ui")
    _audit(user, "mark_preliminary", study, now)
    _touch(study.pk, now)
    _announce(study)
    return study


@transaction.atomic
def mark_final(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Finalize a study from the UI, when no RIS reports it; it leaves the list.

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already final.
    """
    study = _finish(study_id, user, now)
    study.finalized_at = now
    study.reading_status = ReadingStatus.FINAL
    study.version += 1
    study.save(
        update_fields=[
            "claimed_by",
            "claimed_at",
            "finalized_at",
            "reading_status",
            "version",
            "updated_at",
        ]
    )
    _event(study, StudyEvent.Kind.FINAL, user, now, source="ui")
    _audit(user, "mark_final", study, now)
    _announce(study)
    alerts.resolve_alerts(
        study.pk, resolution=alerts.Resolution.STUDY_FINAL, now=now, user=user
    )
    return study


@transaction.atomic
def record_feedback(
    study_id: int,
    finding_code: str,
    user: AbstractBaseUser,
    *,
    verdict: FeedbackVerdict,
    comment: str = "",
    now: datetime,
) -> AIFeedback:
    """Record (or change) a reader's verdict on one AI finding of a study.

    Feedback follows the claim: while another radiologist holds the study, no
    one else judges its finding. A "disagree" by the reader holding the claim
    rejects the finding and resolves its open alert; from a reader who does not
    hold it, it is recorded for monitoring only, and the alert stays open for
    the charge technologists until someone reads the study or acknowledges it.

    Args:
        study_id: the study.
        finding_code: the finding's code ("ich").
        user: the radiologist.
        verdict: agree, disagree or unsure (string or enum).
        comment: optional free text, at most 2,000 characters.
        now: the time of the verdict.

    Raises:
        StudyAlreadyClaimed: another radiologist holds the study.
    """
    study = _lock(study_id)
    verdict = FeedbackVerdict(verdict)
    holds_claim = study.claimed_by_id == user.pk
    if study.claimed_by_id is not None and not holds_claim:
        raise StudyAlreadyClaimed("another radiologist is reading this study")
    finding = (
        Finding.objects.current()
        .filter(study_id=study.pk, code=finding_code)
        .order_by("-created_at", "-pk")
        .first()
    )
    feedback, created = AIFeedback.objects.get_or_create(
        study=study,
        finding_code=finding_code,
        user_id=user.pk,
        defaults={
            "finding": finding,
            "verdict": verdict,
            "comment": comment[:2000],
            "created_at": now,
            "updated_at": now,
        },
    )
    if not created:
        feedback.finding = finding
        feedback.verdict = verdict
        feedback.comment = comment[:2000]
        feedback.updated_at = now
        feedback.save(update_fields=["finding", "verdict", "comment", "updated_at"])
    record_audit(
        user=user,
        action="ai_feedback",
        object_type="study",
        object_id=str(study.pk),
        now=now,
        detail={"finding_code": finding_code, "verdict": verdict.value},
    )
    if holds_claim:
        _touch(study.pk, now)
    if verdict == FeedbackVerdict.DISAGREE and holds_claim:
        alerts.resolve_alerts(
            study.pk,
            resolution=alerts.Resolution.FINDING_REJECTED,
            finding_code=finding_code,
            now=now,
            user=user,
        )
    return feedback


# --- per-reader filters ----------------------------------------------------------


def worklist_filter_of(user: AbstractBaseUser) -> WorklistFilter:
    """The reader's saved filters (unsaved: none set)."""
    saved = WorklistFilter.objects.filter(user_id=user.pk).first()
    return saved or WorklistFilter(user_id=user.pk)


@transaction.atomic
def save_worklist_filter(user: AbstractBaseUser, **fields: Any) -> WorklistFilter:
    """Keep the reader's worklist filters for their next session."""
    unknown = set(fields) - set(WorklistFilter.FILTERS)
    if unknown:
        raise ValueError(f"unknown filters: {sorted(unknown)}")
    saved, _ = WorklistFilter.objects.update_or_create(user_id=user.pk, defaults=fields)
    return saved
