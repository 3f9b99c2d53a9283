"""The reading workflow: claims, reading states, feedback, filters.

Each service locks the study's worklist entry, makes its transition, refreshes
the entry (priority, digest, version: ``worklist.refresh``) and saves it once,
time-stamps the transition (a ``StudyEvent``) and writes the audit row, all in
one transaction; the delta goes to connected worklists once it commits.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.models import User as DjangoUser
from django.db import transaction
from django.db.models import Q

from inference.models import Finding
from triage.models import Study, StudyEvent
from triage.services import record_audit, record_study_event
from triage.vocabulary import ReportStatus
from worklist import refresh
from worklist.alerts import services as alerts
from worklist.models import AIFeedback, FeedbackVerdict, WorklistEntry, WorklistFilter
from worklist.site import reading_ends_in_ris
from worklist.vocabulary import ReadingStatus

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser


class WorkflowError(Exception):
    """A reading-workflow action that cannot be done; the message says why."""


class StudyAlreadyClaimed(WorkflowError):
    """Another radiologist holds the study."""


class StudyNotClaimed(WorkflowError):
    """The action needs the study to be claimed by the acting user."""


class StudyIsFinal(WorkflowError):
    """The study is reported: nothing more to do on the worklist."""


class StudyCancelled(WorkflowError):
    """The study's order was cancelled: it is not to be read."""


class ReadingEndsInRis(WorkflowError):
    """This site's reports are written and signed in the RIS, not here."""


# --- the reading workflow -------------------------------------------------------


def _lock(study_id: int) -> WorklistEntry:
    """The study's entry, locked, with its study (an entry is made if missing).

    Raises:
        Study.DoesNotExist: no such study.
    """
    entry = refresh.lock_entry(
        study_id, *(f"study__{name}" for name in refresh.REFRESH_RELATED)
    )
    if entry is None:
        raise Study.DoesNotExist(f"no study #{study_id}")
    return entry


def _check_readable(entry: WorklistEntry) -> None:
    if entry.reading_status == ReadingStatus.FINAL:
        raise StudyIsFinal("this study is already final")
    if entry.reading_status == ReadingStatus.CANCELLED:
        raise StudyCancelled("this study's order was cancelled")


def _save(entry: WorklistEntry, fields: list[str], now: datetime) -> None:
    """Refresh the changed entry and save it once; queue its delta."""
    study = entry.study
    refresh.load_findings_and_alerts([study])
    study.worklist_entry = entry
    shown_score = entry.priority_score
    changed = refresh.refresh(entry, study, refresh.priority_weights(), now)
    # The caller's transition (reading status included) and the refresh, at once.
    entry.save(update_fields=sorted({*fields, *refresh.REFRESHED_FIELDS}))
    refresh.announce(entry, changed, shown_score)


def _touch(entry: WorklistEntry, now: datetime) -> list[str]:
    entry.last_activity_at = now
    return ["last_activity_at"]


def _event(
    entry: WorklistEntry, kind: str, user: User | None, now: datetime, **detail: Any
) -> None:
    actor = user if isinstance(user, DjangoUser) else None
    record_study_event(entry.study_id, kind, at=now, actor=actor, detail=detail)


def _audit(user: User | None, action: str, entry: WorklistEntry, now: datetime) -> None:
    record_audit(
        user=user,
        action=action,
        object_type="study",
        object_id=str(entry.study_id),
        now=now,
    )


@transaction.atomic
def claim_study(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Claim a study for reading: exactly one radiologist wins a race.

    The entry's row lock serialises concurrent claims; the second sees the
    first's claim. Claiming a study one already holds changes nothing.

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already reported.
        StudyCancelled: its order was cancelled.
        Study.DoesNotExist: no such study.
    """
    entry = _lock(study_id)
    _check_readable(entry)
    if entry.claimed_by_id is not None:
        if entry.claimed_by_id == user.pk:
            return entry.study
        raise StudyAlreadyClaimed("another radiologist is reading this study")
    entry.claimed_by_id = user.pk
    entry.claimed_at = now
    entry.reading_status = ReadingStatus.IN_PROGRESS
    _save(entry, ["claimed_by", "claimed_at", *_touch(entry, now)], now)
    _event(entry, StudyEvent.Kind.CLAIMED, user, now)
    _audit(user, "claim_study", entry, now)
    return entry.study


def _release(
    entry: WorklistEntry, user: User | None, now: datetime, reason: str
) -> None:
    entry.claimed_by = None
    entry.last_activity_at = None
    entry.reading_status = refresh.unclaimed_status(entry, entry.study)
    _save(entry, ["claimed_by", "last_activity_at"], now)
    _event(entry, StudyEvent.Kind.RELEASED, user, now, reason=reason)
    _audit(user, "release_study", entry, now)


@transaction.atomic
def release_study(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Give a claimed study back to the list.

    Raises:
        StudyNotClaimed: the user does not hold it.
    """
    entry = _lock(study_id)
    if entry.claimed_by_id is None or entry.claimed_by_id != user.pk:
        raise StudyNotClaimed("you do not hold this study")
    if entry.reading_status == ReadingStatus.FINAL:
        raise StudyIsFinal("this study is already final")
    _release(entry, user, now, "released")
    return entry.study


def release_inactive_claims(*, now: datetime) -> list[int]:
    """Release claims with no activity for RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES.

    Returns:
        The IDs of the studies released.
    """
    cutoff = now - timedelta(minutes=settings.RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES)
    candidates = (
        WorklistEntry.objects.filter(claimed_by__isnull=False)
        .exclude(reading_status=ReadingStatus.FINAL)
        .filter(
            Q(last_activity_at__lt=cutoff)
            | Q(last_activity_at__isnull=True, claimed_at__lt=cutoff)
        )
        .values_list("study_id", flat=True)
    )
    return [pk for pk in list(candidates) if _release_if_inactive(pk, cutoff, now)]


@transaction.atomic
def _release_if_inactive(study_id: int, cutoff: datetime, now: datetime) -> bool:
    entry = _lock(study_id)
    last = entry.last_activity_at or entry.claimed_at
    if entry.claimed_by_id is None or entry.reading_status == ReadingStatus.FINAL:
        return False
    if last is not None and last >= cutoff:
        return False
    logger.info("releasing inactive claim study_id=%s", study_id)
    _release(entry, None, now, "inactivity")
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
    entry = _lock(study_id)
    fields: list[str] = []
    if entry.first_opened_at is None:
        entry.first_opened_at = now
        fields.append("first_opened_at")
    if entry.claimed_by_id == user.pk:
        fields += _touch(entry, now)
    if fields:
        # Not shown in the row: no refresh, no delta.
        entry.save(update_fields=fields)
    _event(entry, StudyEvent.Kind.OPENED, user, now)
    record_audit(
        user=user,
        action="open_study",
        object_type="study",
        object_id=str(study_id),
        now=now,
        remote_addr=remote_addr,
    )
    study = entry.study
    template: str = settings.RADTRIAGE_VIEWER_URL_TEMPLATE
    return template.format(
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number,
        study_id=study.pk,
    )


def _finish(study_id: int, user: AbstractBaseUser, now: datetime) -> WorklistEntry:
    if reading_ends_in_ris():
        raise ReadingEndsInRis("reports for this site are signed in the RIS")
    entry = _lock(study_id)
    _check_readable(entry)
    if entry.claimed_by_id is not None and entry.claimed_by_id != user.pk:
        raise StudyAlreadyClaimed("another radiologist is reading this study")
    if entry.claimed_by_id is None:
        entry.claimed_by_id = user.pk
        entry.claimed_at = now
    return entry


@transaction.atomic
def mark_preliminary(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Record a preliminary report by the reader (claiming the study if free).

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already reported.
    """
    entry = _finish(study_id, user, now)
    entry.preliminary_at = entry.preliminary_at or now
    entry.reading_status = ReadingStatus.PRELIMINARY
    fields = ["claimed_by", "claimed_at", "preliminary_at", *_touch(entry, now)]
    _save(entry, fields, now)
    _event(entry, StudyEvent.Kind.PRELIMINARY, user, now, source="ui")
    _audit(user, "mark_preliminary", entry, now)
    return entry.study


@transaction.atomic
def mark_final(study_id: int, user: AbstractBaseUser, *, now: datetime) -> Study:
    """Finalize a study from the UI, when no RIS reports it; it leaves the list.

    Raises:
        StudyAlreadyClaimed: another radiologist holds it.
        StudyIsFinal: it is already final.
    """
    entry = _finish(study_id, user, now)
    entry.finalized_at = now
    entry.reading_status = ReadingStatus.FINAL
    _save(entry, ["claimed_by", "claimed_at", "finalized_at"], now)
    _event(entry, StudyEvent.Kind.FINAL, user, now, source="ui")
    _audit(user, "mark_final", entry, now)
    alerts.resolve_alerts(
        study_id, resolution=alerts.Resolution.STUDY_FINAL, now=now, user=user
    )
    return entry.study


def apply_ris_report(
    study_id: int, status: ReportStatus, reported_at: datetime, *, now: datetime
) -> None:
    """The RIS reported on a study: where reading ends there, its reading moves.

    Called in the transaction that stored the report. A preliminary report
    makes the study preliminary (unless final); a final one ends reading and
    resolves its alerts. A correction after the final changes no time: the
    turnaround ends at the first final report. Where reading ends in
    RadTriage, the report is kept for the AI monitoring and nothing moves.
    """
    if not reading_ends_in_ris(report_arriving=True):
        return
    entry = _lock(study_id)
    fields: list[str] = []
    if status == ReportStatus.PRELIMINARY:
        if entry.reading_status == ReadingStatus.FINAL:
            return
        if entry.preliminary_at is None or reported_at < entry.preliminary_at:
            entry.preliminary_at = reported_at
            fields.append("preliminary_at")
        entry.reading_status = ReadingStatus.PRELIMINARY
    else:
        if entry.finalized_at is None:
            entry.finalized_at = reported_at
            fields.append("finalized_at")
        entry.reading_status = ReadingStatus.FINAL
    _save(entry, [*fields, *_touch(entry, now)], now)
    if entry.reading_status == ReadingStatus.FINAL:
        alerts.resolve_alerts(
            study_id, resolution=alerts.Resolution.STUDY_FINAL, now=now
        )


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
    entry = _lock(study_id)
    study = entry.study
    verdict = FeedbackVerdict(verdict)
    holds_claim = entry.claimed_by_id == user.pk
    if entry.claimed_by_id is not None and not holds_claim:
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
        entry.save(update_fields=_touch(entry, now))
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
