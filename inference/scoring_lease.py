"""The scoring claim's lease: renewed while a run goes on, so that a study whose
worker died is queued again within seconds, not after the task's time limit.

A claim takes the lease in its own transaction (:func:`take`); a thread of the
scoring process renews it every third of RADTRIAGE_SCORING_LEASE_SECONDS while
the run lasts (:func:`renewed`). A killed process renews nothing: its lease
expires, and the beat sweep (:func:`reclaim_expired`) queues the study again.
The broker cannot do this for us: with ``acks_late`` a task of a killed worker
comes back only after Redis's visibility timeout (an hour). A study is still
scored once: the claim takes a study from "scoring" only when its lease has
expired (or its run outlived the time limit), in one conditional UPDATE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from inference.models import ScoringLease, StudyScoring
from inference.services import _scoring_sql
from inference.vocabulary import AIStatus
from triage.models import StudyEvent

logger = logging.getLogger(__name__)

#: Runs of one study lost with their worker before it is failed, not queued.
MAX_LOST_RUNS = 3


def lease_length() -> timedelta:
    """How long a lease holds without renewal (RADTRIAGE_SCORING_LEASE_SECONDS)."""
    return timedelta(seconds=settings.RADTRIAGE_SCORING_LEASE_SECONDS)


def take(study_id: int, started_at: datetime) -> None:
    """Take the lease of a run just claimed, in the claim's transaction.

    Args:
        study_id: The study claimed.
        started_at: The claim's time, the run's ``scoring_started_at``.
    """
    _scoring_sql.take_lease(
        study_id, started_at=started_at, expires_at=started_at + lease_length()
    )


def renew(study_id: int, started_at: datetime, *, now: datetime) -> bool:
    """Move the run's lease on from ``now``; False when it is no longer its own."""
    return bool(
        ScoringLease.objects.filter(study_id=study_id, started_at=started_at).update(
            expires_at=now + lease_length()
        )
    )


class _Renewer(threading.Thread):
    """Renews one run's lease until stopped; its own database connection."""

    def __init__(self, study_id: int, started_at: datetime) -> None:
        super().__init__(name=f"scoring-lease-{study_id}", daemon=True)
        self.study_id = study_id
        self.started_at = started_at
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = settings.RADTRIAGE_SCORING_LEASE_SECONDS / 3
        try:
            while not self.stopped.wait(interval):
                try:
                    if not renew(self.study_id, self.started_at, now=timezone.now()):
                        return  # reclaimed: another run owns the study now
                except DatabaseError:
                    # The database is away: the lease may lapse and the study
                    # be scored again elsewhere, which the claim keeps single.
                    logger.warning(
                        "renewing the scoring lease failed study_id=%s", self.study_id
                    )
        finally:
            connections.close_all()  # this thread's own


@contextmanager
def renewed(study_id: int, started_at: datetime) -> Iterator[None]:
    """Keep the run's lease alive while the block runs."""
    renewer = _Renewer(study_id, started_at)
    renewer.start()
    try:
        yield
    finally:
        renewer.stopped.set()
        renewer.join()


def reclaim_expired(*, now: datetime, limit: int = 200) -> list[int]:
    """Queue again the studies whose scoring run's lease expired (its worker died).

    A stable study is queued at once, unless its runs since it became stable
    died more than MAX_LOST_RUNS times: then its AI status is failed, with the
    reason. One whose early run died goes back to pending, and its stability
    queues it. Expired leases of runs that ended are removed.

    Returns:
        The ids of the studies queued again.
    """
    expired = list(
        ScoringLease.objects.filter(expires_at__lt=now)
        .order_by("expires_at")
        .values_list("study_id", "started_at")[:limit]
    )
    requeued = []
    for study_id, started_at in expired:
        if _reclaim(study_id, started_at, now):
            requeued.append(study_id)
    if requeued:
        logger.warning(
            "re-enqueued %d studies whose scoring worker died: study_ids=%s",
            len(requeued),
            requeued,
        )
    return requeued


@transaction.atomic
def _reclaim(study_id: int, started_at: datetime, now: datetime) -> bool:
    from inference import services

    lease = (
        ScoringLease.objects.select_for_update(skip_locked=True)
        .filter(study_id=study_id, started_at=started_at, expires_at__lt=now)
        .first()
    )
    if lease is None:
        return False  # renewed, or taken by a new claim, meanwhile
    lease.delete()
    orphaned = StudyScoring.objects.filter(
        study_id=study_id, ai_status=AIStatus.SCORING, scoring_started_at=started_at
    )
    stable_at = orphaned.values_list("study__stable_at", flat=True).first()
    if stable_at is None:
        if not orphaned.exists():
            return False  # the run ended
        orphaned.update(ai_status=AIStatus.PENDING)
        return False  # an early run: the study's stability queues it
    runs = StudyEvent.objects.filter(
        study_id=study_id, kind=StudyEvent.Kind.SCORING_STARTED, at__gte=stable_at
    ).count()
    if runs > MAX_LOST_RUNS:
        # A study that takes its worker down every time (out of memory, a
        # crashing decoder) must not do so for ever: readers see it failed.
        services.record_scoring_failure(
            study_id, f"the scoring process died {runs} times", now=now
        )
        return False
    return services.enqueue_scoring(study_id, now=now) is not None
