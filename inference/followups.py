"""What must follow a committed scoring result: recorded with it, run until done.

A scoring transaction inserts a :class:`~inference.models.ScoringFollowUp`
beside its results (:func:`record`). Once it commits, :func:`run` sends
``study_scored`` to the layer above (priority, alerts; later results out) and
deletes the follow-up in the same transaction as the receivers' work, so the
work and its "done" commit together. A worker killed between the scoring commit
and the follow-up leaves the row behind: a retried task and the beat sweeper
(:func:`sweep`) run it again. Receivers are idempotent (an alert is unique per
study and finding, by a database constraint), so however often a follow-up is
tried, a critical finding alerts exactly once.
"""

from __future__ import annotations

import enum
import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inference.models import ScoringFollowUp
from inference.signals import study_scored
from radtriage.db import insert_rows
from triage.models import Study

logger = logging.getLogger(__name__)

#: Longest wait between tries of a follow-up whose receivers keep failing.
MAX_BACKOFF_SECONDS = 300.0


class FollowUpRun(enum.Enum):
    """What one :func:`run` did."""

    DONE = "done"  # the receivers ran and the follow-ups are gone
    NOTHING = "nothing"  # none pending, or another run holds them
    FAILED = "failed"  # a receiver failed; kept, with a backoff, for a retry


class FollowUpIncomplete(Exception):
    """A receiver of a follow-up failed; the follow-up stays and is retried."""


def record(study_id: int, *, changed: bool, now: datetime) -> None:
    """Record, in the caller's scoring transaction, that a result must be followed up.

    Runs the follow-up once that transaction commits; should this process die
    first, the retried task or the sweeper runs it.

    Args:
        study_id: The study whose result was recorded.
        changed: Whether the result holds anything new (False: a repeated
            scoring that found the same; receivers do not re-alert).
        now: The result's time (UTC).
    """
    insert_rows(
        ScoringFollowUp,
        [{"study_id": study_id, "changed": changed, "recorded_at": now, "due_at": now}],
    )
    transaction.on_commit(partial(run_after_commit, study_id), robust=True)


def run(study_id: int, *, now: datetime) -> FollowUpRun:
    """Send ``study_scored`` for the study's pending follow-ups; delete them when
    every receiver succeeded.

    The follow-ups are locked (others' locked ones skipped, so two runners
    never wait on each other) and their receivers' work commits with their
    deletion. A failing receiver's work is rolled back (each works in its own
    atomic block); the others' stands, and the follow-ups stay with a backoff.

    Returns:
        What was done.
    """
    with transaction.atomic():
        rows = list(
            ScoringFollowUp.objects.select_for_update(skip_locked=True)
            .filter(study_id=study_id)
            .order_by("pk")
        )
        if not rows:
            return FollowUpRun.NOTHING
        responses = study_scored.send_robust(
            sender=Study, study_id=study_id, changed=any(r.changed for r in rows)
        )
        failures = [r for _, r in responses if isinstance(r, Exception)]
        keys = [r.pk for r in rows]
        if not failures:
            ScoringFollowUp.objects.filter(pk__in=keys).delete()
            return FollowUpRun.DONE
        attempts = max(r.attempts for r in rows) + 1
        backoff = min(2.0**attempts, MAX_BACKOFF_SECONDS)
        ScoringFollowUp.objects.filter(pk__in=keys).update(
            attempts=attempts,
            due_at=now + timedelta(seconds=backoff),
            last_error=", ".join(sorted({type(f).__name__ for f in failures}))[:512],
        )
    logger.warning(
        "scoring follow-up failed study_id=%s attempt=%s: %s",
        study_id,
        attempts,
        ", ".join(type(f).__name__ for f in failures),
    )
    return FollowUpRun.FAILED


def run_after_commit(study_id: int) -> None:
    """Run a study's follow-ups now; on trouble hand them to the retried task."""
    try:
        outcome = run(study_id, now=timezone.now())
    except Exception:
        logger.exception("scoring follow-up failed study_id=%s", study_id)
        outcome = FollowUpRun.FAILED
    if outcome is FollowUpRun.FAILED:
        _send_followup_task(study_id)


def _send_followup_task(study_id: int) -> None:
    from inference.tasks import run_scoring_followups

    try:
        run_scoring_followups.apply_async((study_id,), countdown=1)
    except Exception:
        # The broker is away too: the sweeper finds the follow-up.
        logger.exception("queueing a scoring follow-up failed study_id=%s", study_id)


def sweep(*, now: datetime, limit: int = 200) -> list[int]:
    """Run the follow-ups left pending longer than RADTRIAGE_FOLLOWUP_GRACE_SECONDS.

    A follow-up is normally run right after its commit; one still here after
    the grace lost its runner (a killed worker, a lost task) or is backing off
    after a failure.

    Returns:
        The ids of the studies whose follow-ups this sweep completed.
    """
    cutoff = now - timedelta(seconds=settings.RADTRIAGE_FOLLOWUP_GRACE_SECONDS)
    study_ids = list(
        dict.fromkeys(
            ScoringFollowUp.objects.filter(due_at__lte=cutoff)
            .order_by("due_at")
            .values_list("study_id", flat=True)[:limit]
        )
    )
    done = []
    for study_id in study_ids:
        try:
            outcome = run(study_id, now=now)
        except Exception:
            logger.exception("scoring follow-up failed study_id=%s", study_id)
            continue
        if outcome is FollowUpRun.DONE:
            done.append(study_id)
    if done:
        logger.warning("ran %d scoring follow-ups left pending", len(done))
    return done
