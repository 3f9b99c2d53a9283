"""The claim rule: which studies a scoring run may take, and when a run is stale.

One definition, used by the claim itself (:func:`claim`) and by the sweeper
that queues stuck studies again (``queueing.sweep_stuck_scoring``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q

from inference.models import ScoringLease, StudyScoring
from inference.vocabulary import AIStatus
from triage.models import Study

#: Past the task's hard time limit by this much, a run is taken for lost.
STALE_GRACE = timedelta(seconds=30)


def stale_before(now: datetime) -> datetime:
    """A run started before this has outlived the task's hard time limit."""
    return now - timedelta(seconds=settings.RADTRIAGE_SCORE_TIME_LIMIT) - STALE_GRACE


def stale_run(now: datetime) -> Q:
    """Scoring rows of a run that outlived the task's hard time limit."""
    return Q(ai_status=AIStatus.SCORING, scoring_started_at__lt=stale_before(now))


def claimable(now: datetime) -> Q:
    """Scoring rows a run may claim at ``now``.

    A stable study, or one whose queued scoring is early (a series a model
    needs is complete; otherwise one reopened by late images waits for its
    next stability, which queues it again); pending or queued, or scoring in a
    run that is stale or whose lease expired (its worker died:
    ``inference.scoring_lease``).

    Evaluate it only with the scoring row locked (:func:`claim` does): a
    statement that waited for another claim's row lock re-checks the row, but
    reads the lease table as it was when the statement began, without the
    winner's lease, and would take the study too.
    """
    stable = Exists(
        Study.objects.filter(pk=OuterRef("study_id"), stable_at__isnull=False)
    )
    live_lease = Exists(
        ScoringLease.objects.filter(study_id=OuterRef("study_id"), expires_at__gte=now)
    )
    ready = Q(stable) | Q(early_scoring_queued_at=F("scoring_queued_at"))
    lost = Q(ai_status=AIStatus.SCORING) & ~Q(live_lease)
    return ready & (
        Q(ai_status__in=[AIStatus.PENDING, AIStatus.QUEUED]) | stale_run(now) | lost
    )


@dataclass(frozen=True, slots=True)
class ClaimedStudy:
    """What the claim of a study read of it."""

    early: bool  # not stable yet: an early run
    body_part_examined: str


def claim(study_id: int, *, now: datetime) -> ClaimedStudy | None:
    """Set a claimable study "scoring" as of ``now``; None if not claimable.

    In a transaction that also takes the run's lease. The row lock comes first,
    in a statement of its own: once it is granted, a claim made at the same time
    has committed, and the claiming statement, which starts after, sees all of
    it (PostgreSQL's READ COMMITTED takes a snapshot per statement).
    """
    if not StudyScoring.objects.select_for_update().filter(study_id=study_id).exists():
        return None
    taken = StudyScoring.objects.filter(claimable(now), study_id=study_id).update(
        ai_status=AIStatus.SCORING, ai_status_reason="", scoring_started_at=now
    )
    if not taken:
        return None
    stable_at, body_part = Study.objects.values_list(
        "stable_at", "body_part_examined"
    ).get(pk=study_id)
    return ClaimedStudy(early=stable_at is None, body_part_examined=body_part)
