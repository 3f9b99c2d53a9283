"""What follows a committed scoring result (priority, alerts) is recorded in
its transaction and run until done, exactly once in effect, whatever dies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from inference import followups, services, tasks
from inference.models import ScoringFollowUp
from inference.signals import study_scored
from tests.factories import AlertFactory, entry_of
from triage.models import AuditEvent, Study
from worklist.alerts.models import Alert
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


def score_without_follow_up(study: Study) -> None:
    """Score as a worker killed right after the scoring commit would: the
    on-commit callbacks never run (pytest-django's transaction never commits)."""
    assert services.score_study(study.pk, clock=timezone.now)


def later(seconds: float = 60.0) -> Any:
    return timezone.now() + timedelta(seconds=seconds)


def raised_audits(study: Study) -> int:
    return AuditEvent.objects.filter(
        action="alert.raised", detail__study_id=study.pk
    ).count()


@pytest.fixture
def failing_alerts() -> Iterator[list[int]]:
    """A receiver of study_scored that fails while the list is not empty."""
    fail: list[int] = [1]

    def receiver(sender: Any, study_id: int, **kwargs: Any) -> None:
        if fail:
            raise RuntimeError("board unreachable")

    study_scored.connect(receiver, dispatch_uid="test-failing")
    yield fail
    study_scored.disconnect(dispatch_uid="test-failing")


def test_a_scoring_result_records_its_follow_up_in_the_same_transaction(
    bleed: Study,
) -> None:
    score_without_follow_up(bleed)
    follow_up = ScoringFollowUp.objects.get(study=bleed)
    assert follow_up.changed
    assert follow_up.attempts == 0
    # Nothing ran: no alert yet, and the worklist does not show it ready.
    assert not Alert.objects.filter(study=bleed).exists()
    bleed.refresh_from_db()
    assert entry_of(bleed).reading_status != ReadingStatus.READY


def test_the_sweeper_alerts_a_result_whose_follow_up_was_lost(
    bleed: Study, django_capture_on_commit_callbacks: Any
) -> None:
    score_without_follow_up(bleed)
    with django_capture_on_commit_callbacks(execute=True):
        assert followups.sweep(now=later()) == [bleed.pk]
    alert = Alert.objects.get(study=bleed)
    assert alert.finding_code == "ICH"
    bleed.refresh_from_db()
    assert entry_of(bleed).reading_status == ReadingStatus.READY  # priority recomputed
    assert not ScoringFollowUp.objects.filter(study=bleed).exists()
    # Swept again (or run by a late task): nothing more happens.
    assert followups.sweep(now=later(120)) == []
    assert followups.run(bleed.pk, now=later()) is followups.FollowUpRun.NOTHING
    assert Alert.objects.filter(study=bleed).count() == 1
    assert raised_audits(bleed) == 1


def test_a_fresh_follow_up_is_left_to_its_own_runner(bleed: Study) -> None:
    score_without_follow_up(bleed)
    assert followups.sweep(now=timezone.now()) == []  # within the grace
    assert ScoringFollowUp.objects.filter(study=bleed).exists()


def test_a_follow_up_run_twice_alerts_once(bleed: Study) -> None:
    score_without_follow_up(bleed)
    assert followups.run(bleed.pk, now=timezone.now()) is followups.FollowUpRun.DONE
    # The same result followed up again (a re-delivered task, a second record).
    ScoringFollowUp.objects.create(
        study=bleed, changed=True, recorded_at=later(), due_at=later()
    )
    assert followups.run(bleed.pk, now=later()) is followups.FollowUpRun.DONE
    assert Alert.objects.filter(study=bleed).count() == 1
    assert raised_audits(bleed) == 1


def test_pending_follow_ups_of_a_study_run_as_one(bleed: Study) -> None:
    score_without_follow_up(bleed)
    ScoringFollowUp.objects.create(
        study=bleed, changed=False, recorded_at=later(), due_at=later()
    )
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    study_scored.connect(receiver, dispatch_uid="test-count")
    try:
        followups.run(bleed.pk, now=later())
    finally:
        study_scored.disconnect(dispatch_uid="test-count")
    # One announcement; changed, because one of them held new findings.
    assert [r["changed"] for r in received] == [True]
    assert not ScoringFollowUp.objects.exists()


def test_a_failing_receiver_keeps_the_follow_up_with_a_backoff(
    bleed: Study, failing_alerts: list[int]
) -> None:
    score_without_follow_up(bleed)
    now = timezone.now()
    assert followups.run(bleed.pk, now=now) is followups.FollowUpRun.FAILED
    follow_up = ScoringFollowUp.objects.get(study=bleed)
    assert follow_up.attempts == 1
    assert follow_up.due_at == now + timedelta(seconds=2)
    assert follow_up.last_error == "RuntimeError"  # the type, never the message
    # The other receivers' work stands: the alert is up already.
    assert Alert.objects.filter(study=bleed).count() == 1
    # Not before its backoff (plus the grace) is over.
    assert followups.sweep(now=now + timedelta(seconds=3)) == []
    assert followups.run(bleed.pk, now=now) is followups.FollowUpRun.FAILED
    assert ScoringFollowUp.objects.get(study=bleed).attempts == 2
    failing_alerts.clear()
    assert followups.sweep(now=now + timedelta(seconds=60)) == [bleed.pk]
    assert not ScoringFollowUp.objects.exists()
    assert Alert.objects.filter(study=bleed).count() == 1
    assert raised_audits(bleed) == 1


def test_the_task_raises_for_a_retry_until_the_follow_up_is_done(
    bleed: Study, failing_alerts: list[int]
) -> None:
    score_without_follow_up(bleed)
    with pytest.raises(followups.FollowUpIncomplete):
        tasks.run_scoring_followups.run(bleed.pk)
    failing_alerts.clear()
    tasks.run_scoring_followups.run(bleed.pk)
    assert not ScoringFollowUp.objects.exists()


def test_a_failed_scoring_is_followed_up_too(
    bleed: Study, django_capture_on_commit_callbacks: Any
) -> None:
    services.record_scoring_failure(
        bleed.pk, "gave up after 3 retries", now=timezone.now()
    )
    assert ScoringFollowUp.objects.filter(study=bleed, changed=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        services.record_scoring_failure(bleed.pk, "again", now=timezone.now())
    assert not ScoringFollowUp.objects.exists()
    bleed.refresh_from_db()
    assert entry_of(bleed).reading_status == ReadingStatus.READY  # no longer awaits AI


def test_the_database_refuses_a_second_alert_for_one_finding(bleed: Study) -> None:
    score_without_follow_up(bleed)
    followups.run(bleed.pk, now=timezone.now())
    alert = Alert.objects.get(study=bleed)
    with pytest.raises(IntegrityError), transaction.atomic():
        AlertFactory.create(study=bleed, finding_code=alert.finding_code)


def test_the_worklist_receivers_let_a_failure_through_for_a_retry(
    bleed: Study, django_capture_on_commit_callbacks: Any
) -> None:
    from worklist.alerts import services as alert_services

    score_without_follow_up(bleed)
    with (
        mock.patch.object(
            alert_services, "raise_alerts", side_effect=OperationalError("gone")
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert (
            followups.run(bleed.pk, now=timezone.now()) is followups.FollowUpRun.FAILED
        )
    assert ScoringFollowUp.objects.get(study=bleed).last_error == "OperationalError"
    bleed.refresh_from_db()
    # The priority's part stands.
    assert entry_of(bleed).reading_status == ReadingStatus.READY
    assert followups.run(bleed.pk, now=later()) is followups.FollowUpRun.DONE
    assert Alert.objects.filter(study=bleed).count() == 1
