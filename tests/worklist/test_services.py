"""The reading workflow and priority services, on the test database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from inference.models import Finding
from inference.signals import study_scored
from inference.vocabulary import AIStatus
from tests.factories import FindingFactory, ScoreResultFactory, StudyFactory, entry_of
from triage.models import AuditEvent, Study, StudyEvent
from triage.roles import Role
from triage.signals import study_changed
from triage.vocabulary import OrderPriority, PatientClass
from worklist import broadcast, refresh, services
from worklist.models import AIFeedback, FeedbackVerdict, WorklistEntry
from worklist.queries import for_worklist
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[Any], list[int]]]:
    """Deltas sent to browsers, instead of a channel layer."""
    deltas: list[tuple[list[Any], list[int]]] = []

    def capture(upserted: list[Any], removed: list[int]) -> None:
        deltas.append((list(upserted), list(removed)))

    monkeypatch.setattr(broadcast, "send_delta", capture)
    return deltas


@pytest.fixture
def reader(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user(Role.RADIOLOGIST, "reader1")


@pytest.fixture
def other_reader(make_user: Callable[..., AbstractBaseUser]) -> AbstractBaseUser:
    return make_user(Role.RADIOLOGIST, "reader2")


def ready_study(**fields: Any) -> Study:
    defaults: dict[str, Any] = {
        "reading_status": ReadingStatus.READY,
        "ai_status": AIStatus.SCORED,
        "stable_at": NOW - timedelta(minutes=1),
        "first_instance_received_at": NOW - timedelta(minutes=10),
    }
    study = StudyFactory.create(**{**defaults, **fields})
    return study


def test_claim_marks_study_in_progress_and_records_it(
    reader: AbstractBaseUser, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    study = ready_study()
    with django_capture_on_commit_callbacks(execute=True):
        services.claim_study(study.pk, reader, now=NOW)
    study.refresh_from_db()
    assert entry_of(study).reading_status == ReadingStatus.IN_PROGRESS
    assert entry_of(study).claimed_by_id == reader.pk
    assert entry_of(study).claimed_at == NOW
    assert entry_of(study).version == 1
    assert StudyEvent.objects.filter(
        study=study, kind=StudyEvent.Kind.CLAIMED, actor_id=reader.pk
    ).exists()
    assert AuditEvent.objects.filter(action="claim_study", object_id=str(study.pk))
    score = entry_of(study).priority_score
    assert sent == [([{"id": study.pk, "version": 1, "priority_score": score}], [])]


def test_second_reader_cannot_claim_claimed_study(
    reader: AbstractBaseUser, other_reader: AbstractBaseUser
) -> None:
    study = ready_study()
    services.claim_study(study.pk, reader, now=NOW)
    with pytest.raises(services.StudyAlreadyClaimed):
        services.claim_study(study.pk, other_reader, now=NOW)
    study.refresh_from_db()
    assert entry_of(study).claimed_by_id == reader.pk


def test_claiming_again_by_the_same_reader_changes_nothing(
    reader: AbstractBaseUser,
) -> None:
    study = ready_study()
    services.claim_study(study.pk, reader, now=NOW)
    services.claim_study(study.pk, reader, now=NOW + timedelta(minutes=1))
    study.refresh_from_db()
    assert (entry_of(study).claimed_at, entry_of(study).version) == (NOW, 1)


def test_final_study_cannot_be_claimed(reader: AbstractBaseUser) -> None:
    study = ready_study(reading_status=ReadingStatus.FINAL)
    with pytest.raises(services.StudyIsFinal):
        services.claim_study(study.pk, reader, now=NOW)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, ReadingStatus.READY),
        ({"ai_status": AIStatus.SCORING}, ReadingStatus.AWAITING_AI),
        ({"stable_at": None}, ReadingStatus.AWAITING_IMAGES),
        ({"preliminary_at": NOW}, ReadingStatus.PRELIMINARY),
        ({"ai_status": AIStatus.FAILED}, ReadingStatus.READY),
    ],
)
def test_release_returns_the_study_to_where_it_stands(
    reader: AbstractBaseUser, fields: dict[str, Any], expected: ReadingStatus
) -> None:
    study = ready_study(**fields)
    services.claim_study(study.pk, reader, now=NOW)
    services.release_study(study.pk, reader, now=NOW + timedelta(minutes=2))
    study.refresh_from_db()
    assert entry_of(study).claimed_by_id is None
    assert entry_of(study).reading_status == expected
    event = StudyEvent.objects.get(study=study, kind=StudyEvent.Kind.RELEASED)
    assert event.detail == {"reason": "released"}


def test_only_the_claimant_can_release(
    reader: AbstractBaseUser, other_reader: AbstractBaseUser
) -> None:
    study = ready_study()
    services.claim_study(study.pk, reader, now=NOW)
    with pytest.raises(services.StudyNotClaimed):
        services.release_study(study.pk, other_reader, now=NOW)


def test_inactive_claims_are_released_after_the_configured_minutes(
    reader: AbstractBaseUser, settings: Any
) -> None:
    settings.RADTRIAGE_CLAIM_AUTO_RELEASE_MINUTES = 30
    idle, busy = ready_study(), ready_study()
    services.claim_study(idle.pk, reader, now=NOW)
    services.claim_study(busy.pk, reader, now=NOW)
    services.open_study(busy.pk, reader, now=NOW + timedelta(minutes=20))

    assert services.release_inactive_claims(now=NOW + timedelta(minutes=29)) == []
    assert services.release_inactive_claims(now=NOW + timedelta(minutes=31)) == [
        idle.pk
    ]
    idle.refresh_from_db()
    assert entry_of(idle).claimed_by_id is None
    assert StudyEvent.objects.get(study=idle, kind=StudyEvent.Kind.RELEASED).detail == {
        "reason": "inactivity"
    }
    assert services.release_inactive_claims(now=NOW + timedelta(minutes=51)) == [
        busy.pk
    ]


def test_opening_a_study_records_the_first_open_and_gives_the_viewer_url(
    reader: AbstractBaseUser, settings: Any
) -> None:
    settings.RADTRIAGE_VIEWER_URL_TEMPLATE = (
        "/ohif/viewer?StudyInstanceUIDs={study_instance_uid}"
    )
    study = ready_study(study_instance_uid="1.2.3.4")
    url = services.open_study(study.pk, reader, now=NOW)
    services.open_study(study.pk, reader, now=NOW + timedelta(minutes=5))
    study.refresh_from_db()
    assert url == "/ohif/viewer?StudyInstanceUIDs=1.2.3.4"
    assert entry_of(study).first_opened_at == NOW
    assert (
        StudyEvent.objects.filter(study=study, kind=StudyEvent.Kind.OPENED).count() == 2
    )
    assert AuditEvent.objects.filter(action="open_study").count() == 2


def test_mark_final_takes_the_study_off_the_list(
    reader: AbstractBaseUser, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    study = ready_study()
    with django_capture_on_commit_callbacks(execute=True):
        services.mark_final(study.pk, reader, now=NOW)
    study.refresh_from_db()
    assert entry_of(study).reading_status == ReadingStatus.FINAL
    assert entry_of(study).finalized_at == NOW
    assert entry_of(study).claimed_by_id == reader.pk  # who read it
    assert sent == [([], [study.pk])]
    assert not for_worklist().filter(pk=study.pk).exists()
    with pytest.raises(services.StudyIsFinal):
        services.mark_final(study.pk, reader, now=NOW)


def test_mark_final_is_refused_while_another_reader_holds_the_study(
    reader: AbstractBaseUser, other_reader: AbstractBaseUser
) -> None:
    study = ready_study()
    services.claim_study(study.pk, reader, now=NOW)
    with pytest.raises(services.StudyAlreadyClaimed):
        services.mark_final(study.pk, other_reader, now=NOW)


def test_preliminary_then_final_time_stamps_each_transition(
    reader: AbstractBaseUser,
) -> None:
    study = ready_study()
    services.claim_study(study.pk, reader, now=NOW)
    services.mark_preliminary(study.pk, reader, now=NOW + timedelta(minutes=5))
    services.mark_final(study.pk, reader, now=NOW + timedelta(minutes=9))
    study.refresh_from_db()
    assert entry_of(study).preliminary_at == NOW + timedelta(minutes=5)
    assert entry_of(study).finalized_at == NOW + timedelta(minutes=9)
    kinds = list(StudyEvent.objects.filter(study=study).values_list("kind", flat=True))
    assert kinds == ["claimed", "preliminary", "final"]


def test_feedback_is_one_verdict_per_reader_and_finding(
    reader: AbstractBaseUser,
) -> None:
    study = ready_study()
    services.record_feedback(
        study.pk, "ich", reader, verdict=FeedbackVerdict.AGREE, now=NOW
    )
    services.record_feedback(
        study.pk,
        "ich",
        reader,
        verdict=FeedbackVerdict("disagree"),
        comment="calcification, not blood",
        now=NOW + timedelta(minutes=1),
    )
    feedback = AIFeedback.objects.get()
    assert feedback.verdict == FeedbackVerdict.DISAGREE
    assert feedback.comment == "calcification, not blood"
    assert (feedback.created_at, feedback.updated_at) == (
        NOW,
        NOW + timedelta(minutes=1),
    )
    assert AuditEvent.objects.filter(action="ai_feedback").count() == 2


def test_recompute_priority_stores_score_and_reasons(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    study = ready_study(
        patient_class=PatientClass.EMERGENCY,
        order_priority=OrderPriority.STAT,
        first_instance_received_at=NOW - timedelta(minutes=30),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh.recompute_priority(study.pk, now=NOW)
    study.refresh_from_db()
    assert entry_of(study).priority_score == 40 + 30 + 10
    assert {"code": "waiting", "points": 10.0, "reason": "waiting 30 min of 60"} in (
        entry_of(study).priority_components
    )
    assert entry_of(study).version == 1
    assert not WorklistEntry.objects.get(study=study).ai_flagged
    assert sent == [([{"id": study.pk, "version": 1, "priority_score": 80.0}], [])]


def test_acquisition_time_starts_the_wait_when_known() -> None:
    study = ready_study(
        patient_class=PatientClass.EMERGENCY,
        acquired_at=NOW - timedelta(minutes=60),
        first_instance_received_at=NOW - timedelta(minutes=30),
    )
    refresh.recompute_priority(study.pk, now=NOW)
    study.refresh_from_db()
    assert "waiting 60 min of 60" in [
        c["reason"] for c in entry_of(study).priority_components
    ]


def test_weights_come_from_settings(settings: Any) -> None:
    settings.RADTRIAGE_PRIORITY_ORDER_POINTS = {"stat": 100.0}
    settings.RADTRIAGE_SLA_MINUTES = {"emergency": 10.0}
    weights = refresh.priority_weights()
    assert weights.order_points[OrderPriority.STAT] == 100.0
    assert weights.sla_for(PatientClass.EMERGENCY) == 10.0
    assert weights.sla_for(PatientClass.OUTPATIENT) == 1440.0


def test_refresh_rescores_waiting_studies_without_touching_final_ones(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    waiting = ready_study(patient_class=PatientClass.EMERGENCY)
    final = ready_study(reading_status=ReadingStatus.FINAL, priority_score=3.0)
    with django_capture_on_commit_callbacks(execute=True):
        refresh.recompute_priority(waiting.pk, now=NOW)
    sent.clear()
    waiting.refresh_from_db()
    before, version = entry_of(waiting).priority_score, entry_of(waiting).version

    with django_capture_on_commit_callbacks(execute=True):
        changed = refresh.refresh_all(now=NOW + timedelta(minutes=30))
    assert changed == 1
    waiting.refresh_from_db()
    final.refresh_from_db()
    assert entry_of(waiting).priority_score == pytest.approx(before + 10)
    # The row's content is unchanged: the delta carries the new score alone.
    assert entry_of(waiting).version == version
    assert entry_of(final).priority_score == 3.0
    # One delta for the whole refresh.
    assert len(sent) == 1
    assert [u["id"] for u in sent[0][0]] == [waiting.pk]


def test_changes_in_one_transaction_go_out_as_one_delta(
    reader: AbstractBaseUser, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    first, second = ready_study(), ready_study()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        services.claim_study(first.pk, reader, now=NOW)
        services.claim_study(second.pk, reader, now=NOW)
        services.release_study(first.pk, reader, now=NOW)
    assert len(sent) == 1
    upserted, removed = sent[0]
    assert [(u["id"], u["version"]) for u in upserted] == [
        (first.pk, 2),
        (second.pk, 1),
    ]
    assert removed == []


def test_nothing_is_sent_for_a_rolled_back_change(
    reader: AbstractBaseUser, sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    study = ready_study()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            services.claim_study(study.pk, reader, now=NOW)
            raise RuntimeError("boom")
        services.release_inactive_claims(now=NOW)
    assert sent == []


def test_study_changed_signal_recomputes_priority(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = ready_study(patient_class=PatientClass.INPATIENT)
    with django_capture_on_commit_callbacks(execute=True):
        study_changed.send(sender=Study, study_id=study.pk)
    study.refresh_from_db()
    assert entry_of(study).priority_score >= 15
    assert entry_of(study).priority_components


def make_finding(
    study: Study,
    *,
    probability: float = 0.94,
    positive: bool = True,
    shadow: bool = False,
    severity: str = "critical",
    heatmap_path: str = "",
) -> Finding:
    result = ScoreResultFactory.create(
        study=study, mode="shadow" if shadow else "active", scored_at=NOW
    )
    return FindingFactory.create(
        result=result,
        severity=severity,
        probability=probability,
        positive=positive,
        heatmap_path=heatmap_path,
        created_at=NOW,
    )


def test_a_live_positive_finding_raises_priority_and_flags_the_study() -> None:
    study = ready_study(patient_class=PatientClass.OUTPATIENT)
    make_finding(study)
    assert refresh.recompute_priority(study.pk, now=NOW)
    study.refresh_from_db()
    assert "ICH suspected 0.94" in [
        c["reason"] for c in entry_of(study).priority_components
    ]
    assert entry_of(study).priority_score >= 94
    assert WorklistEntry.objects.get(study=study).ai_flagged


def test_shadow_and_urgent_findings_weigh_as_configured() -> None:
    shadow_study, urgent_study = ready_study(), ready_study()
    make_finding(shadow_study, shadow=True)
    make_finding(urgent_study, severity="urgent", probability=1.0)
    refresh.recompute_priority(shadow_study.pk, now=NOW)
    refresh.recompute_priority(urgent_study.pk, now=NOW)
    shadow_study.refresh_from_db()
    urgent_study.refresh_from_db()
    assert not WorklistEntry.objects.get(study=shadow_study).ai_flagged
    ai = [c for c in entry_of(urgent_study).priority_components if c["code"] == "ai"]
    assert ai[0]["points"] == pytest.approx(100 * 0.6)


def test_scoring_moves_an_unclaimed_study_from_awaiting_ai_to_ready() -> None:
    study = ready_study(reading_status=ReadingStatus.AWAITING_AI)
    refresh.recompute_priority(study.pk, now=NOW)
    study.refresh_from_db()
    assert entry_of(study).reading_status == ReadingStatus.READY


def test_study_scored_signal_recomputes_priority(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = ready_study(reading_status=ReadingStatus.AWAITING_AI)
    make_finding(study)
    with django_capture_on_commit_callbacks(execute=True):
        study_scored.send(sender=Study, study_id=study.pk, changed=True)
    study.refresh_from_db()
    assert entry_of(study).reading_status == ReadingStatus.READY
    assert WorklistEntry.objects.get(study=study).ai_flagged


def test_feedback_is_linked_to_the_finding_judged(reader: AbstractBaseUser) -> None:
    study = ready_study()
    finding = make_finding(study)
    feedback = services.record_feedback(
        study.pk, "ich", reader, verdict=FeedbackVerdict.AGREE, now=NOW
    )
    assert feedback.finding_id == finding.pk


def test_a_refresh_lost_after_its_commit_is_made_by_the_periodic_refresh(
    sent: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    # Scored and announced, but the process died before the on-commit refresh
    # ran: the entry still says it awaits the AI.
    study = ready_study(reading_status=ReadingStatus.AWAITING_AI)
    make_finding(study)
    study_scored.send(sender=Study, study_id=study.pk, changed=True)
    assert entry_of(study).reading_status == ReadingStatus.AWAITING_AI
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh.refresh_all(now=NOW) == 1
    entry = entry_of(study)
    assert entry.reading_status == ReadingStatus.READY
    assert entry.ai_flagged
    assert [u["id"] for u in sent[-1][0]] == [study.pk]
