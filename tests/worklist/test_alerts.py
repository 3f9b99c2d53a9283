"""The alert lifecycle: raise, update on rescoring, acknowledge, resolve."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser

from inference.signals import study_scored
from tests.factories import entry_of, scoring_of
from tests.worklist.alert_data import NOW, add_finding, scored_study
from triage.models import AuditEvent, Study
from triage.roles import Role
from triage.signals import study_changed
from worklist import services as worklist_services
from worklist.alerts import broadcast as alert_broadcast
from worklist.alerts import services
from worklist.alerts.models import Alert, AlertStatus
from worklist.models import FeedbackVerdict, WorklistEntry
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def deltas(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    sent: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        alert_broadcast, "send_alert_changed", lambda *args: sent.append(args)
    )
    return sent


@pytest.fixture
def tech(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user(Role.CHARGE_TECHNOLOGIST, "tech1")


@pytest.fixture
def reader(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user(Role.RADIOLOGIST, "reader1")


def test_a_positive_critical_finding_raises_one_alert_with_its_timeline() -> None:
    study = scored_study()
    add_finding(study, probability=0.91)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    assert alert.status == AlertStatus.OPEN
    assert alert.finding_code == "ich"
    assert alert.probability == pytest.approx(0.91)
    assert alert.last_instance_received_at == study.last_instance_received_at
    assert alert.stable_at == study.stable_at
    assert alert.scored_at == scoring_of(study).scored_at
    assert alert.raised_at == NOW
    assert alert.delivered_at is None
    assert AuditEvent.objects.filter(action="alert.raised").count() == 1


@pytest.mark.parametrize(
    "finding",
    [
        {"probability": 0.4, "threshold": 0.5},  # below the site threshold
        {"severity": "urgent"},  # not critical
        {"shadow": True},  # shadow models never alert
    ],
)
def test_findings_that_do_not_alert(finding: dict[str, Any]) -> None:
    study = scored_study()
    add_finding(study, **finding)
    assert services.raise_alerts(study.pk, now=NOW) == []
    assert not Alert.objects.exists()


def test_a_final_study_raises_no_alert() -> None:
    study = scored_study(reading_status=ReadingStatus.FINAL)
    add_finding(study)
    assert services.raise_alerts(study.pk, now=NOW) == []


def test_rescoring_updates_the_alert_instead_of_duplicating_it() -> None:
    study = scored_study()
    add_finding(study, probability=0.8)
    [first] = services.raise_alerts(study.pk, now=NOW)
    # The same findings announced again change nothing.
    assert services.raise_alerts(study.pk, now=NOW) == []
    add_finding(study, probability=0.97)
    [again] = services.raise_alerts(study.pk, now=NOW + timedelta(minutes=1))
    assert again.pk == first.pk
    assert Alert.objects.count() == 1
    assert again.probability == pytest.approx(0.97)
    assert again.version == first.version + 1
    assert again.raised_at == NOW


def test_rescoring_below_threshold_resolves_and_positive_again_reopens() -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    add_finding(study, probability=0.1)
    services.raise_alerts(study.pk, now=NOW)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    assert alert.resolution == services.Resolution.NO_LONGER_POSITIVE
    add_finding(study, probability=0.9)
    services.raise_alerts(study.pk, now=NOW)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    assert Alert.objects.count() == 1


def test_the_study_scored_signal_raises_the_alert(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = scored_study()
    add_finding(study)
    study_scored.send(sender=Study, study_id=study.pk, changed=True)
    assert Alert.objects.filter(study=study, status=AlertStatus.OPEN).count() == 1


def test_acknowledging_records_who_when_and_note_once(
    tech: AbstractBaseUser,
    deltas: list[tuple[Any, ...]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = scored_study()
    add_finding(study)
    with django_capture_on_commit_callbacks(execute=True):
        [alert] = services.raise_alerts(study.pk, now=NOW)
    version_before = entry_of(study).version
    later = NOW + timedelta(minutes=2)
    with django_capture_on_commit_callbacks(execute=True):
        acked = services.acknowledge_alert(
            alert.pk, tech, note="  called Dr Lee  ", now=later
        )
    assert acked.status == AlertStatus.ACKNOWLEDGED
    assert acked.acknowledged_by_id == tech.pk
    assert acked.acknowledged_at == later
    assert acked.acknowledgement_note == "called Dr Lee"
    # Seen by a person: delivered at the latest then.
    assert acked.delivered_at == later
    # The radiologist's row refetches: the entry's version moved.
    assert entry_of(study).version > version_before
    again = services.acknowledge_alert(
        alert.pk, tech, note="x", now=later + timedelta(1)
    )
    assert again.acknowledged_at == later
    # Deltas name the alert and study by ID, with version and status: no PHI.
    assert deltas[-1] == (
        alert.pk,
        study.pk,
        acked.version,
        "acknowledged",
        False,
    )


def test_first_browser_receipt_is_the_delivery_time(tech: AbstractBaseUser) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    assert services.mark_delivered(alert.pk, tech, now=NOW + timedelta(seconds=1))
    assert not services.mark_delivered(alert.pk, tech, now=NOW + timedelta(seconds=9))
    alert.refresh_from_db()
    assert alert.delivered_at == NOW + timedelta(seconds=1)
    [audit] = AuditEvent.objects.filter(action="alert.delivered")
    assert (audit.user_id, audit.object_id) == (tech.pk, str(alert.pk))


def test_a_receipt_from_who_may_not_act_on_it_is_no_delivery(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    for role in (Role.DEPARTMENT_HEAD, Role.ADMINISTRATOR, Role.RADIOLOGIST):
        watcher = make_user(role)
        assert not services.mark_delivered(alert.pk, watcher, now=NOW)
    alert.refresh_from_db()
    assert alert.delivered_at is None
    assert not AuditEvent.objects.filter(action="alert.delivered").exists()


def test_rejecting_the_finding_resolves_the_alert(reader: AbstractBaseUser) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    worklist_services.claim_study(study.pk, reader, now=NOW)
    worklist_services.record_feedback(
        study.pk, "ich", reader, verdict=FeedbackVerdict.AGREE, now=NOW
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    worklist_services.record_feedback(
        study.pk, "ich", reader, verdict=FeedbackVerdict.DISAGREE, now=NOW
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    assert alert.resolution == services.Resolution.FINDING_REJECTED
    # A later rescoring with the same finding does not reopen it.
    add_finding(study, probability=0.99)
    services.raise_alerts(study.pk, now=NOW)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_a_reader_not_holding_the_claim_cannot_clear_the_alert(
    reader: AbstractBaseUser, make_user: Callable[..., AbstractBaseUser]
) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    other = make_user(Role.RADIOLOGIST, "reader2")
    # Nobody holds it: the verdict is kept for monitoring, the alert stays open.
    worklist_services.record_feedback(
        study.pk, "ich", other, verdict=FeedbackVerdict.DISAGREE, now=NOW
    )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN
    # Someone else holds it: no verdict at all.
    worklist_services.claim_study(study.pk, reader, now=NOW)
    with pytest.raises(worklist_services.StudyAlreadyClaimed):
        worklist_services.record_feedback(
            study.pk, "ich", other, verdict=FeedbackVerdict.DISAGREE, now=NOW
        )
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


def test_finalizing_the_study_resolves_its_alerts(
    reader: AbstractBaseUser, tech: AbstractBaseUser
) -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    services.acknowledge_alert(alert.pk, tech, now=NOW)
    worklist_services.mark_final(study.pk, reader, now=NOW + timedelta(minutes=5))
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    assert alert.resolution == services.Resolution.STUDY_FINAL
    with pytest.raises(services.AlertResolved):
        services.acknowledge_alert(alert.pk, tech, now=NOW)


def test_a_study_finalized_by_the_ris_resolves_its_alerts() -> None:
    study = scored_study()
    add_finding(study)
    [alert] = services.raise_alerts(study.pk, now=NOW)
    WorklistEntry.objects.filter(study=study).update(reading_status=ReadingStatus.FINAL)
    study_changed.send(sender=Study, study_id=study.pk)
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED


def test_board_figures_count_alerts_and_their_ppv(reader: AbstractBaseUser) -> None:
    agreed, rejected, unjudged = scored_study(), scored_study(), scored_study()
    for study in (agreed, rejected, unjudged):
        add_finding(study)
        services.raise_alerts(study.pk, now=NOW)
    worklist_services.record_feedback(
        agreed.pk, "ich", reader, verdict=FeedbackVerdict.AGREE, now=NOW
    )
    worklist_services.record_feedback(
        rejected.pk, "ich", reader, verdict=FeedbackVerdict.DISAGREE, now=NOW
    )
    figures = services.board_figures(now=NOW + timedelta(hours=1))
    assert figures.alerts_last_24h == 3
    assert figures.judged == 2
    assert figures.ppv == pytest.approx(0.5)
    assert figures.shift_alerts == 3
