"""Reports from the RIS: stored, matched by accession, ending reading where the
site reads in the RIS, and labelling the AI's findings for the monitoring."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from inference.models import ReportFindingLabel
from inference.vocabulary import ReportLabel
from tests.factories import (
    AlertFactory,
    FindingFactory,
    ScoreResultFactory,
    StudyFactory,
    entry_of,
)
from triage.models import Report, Study, StudyEvent
from triage.report_intake import ReportDetails, ReportNotApplicable, receive_report
from triage.vocabulary import IntakeSource, ReportStatus
from worklist import services as worklist_services
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

NEGATIVE_TEXT = (
    "FINDINGS: Normal ventricles.\nIMPRESSION: No acute intracranial hemorrhage."
)
POSITIVE_TEXT = "IMPRESSION: Acute left subdural hematoma with 4 mm midline shift."
UNCERTAIN_TEXT = "IMPRESSION: Small subdural hematoma cannot be excluded."


@pytest.fixture
def ris(settings: Any) -> None:
    settings.RADTRIAGE_READING_ENDS_IN = "ris"


def _study(accession: str = "ACC-1", **fields: object) -> Study:
    return StudyFactory.create(
        accession_number=accession, reading_status=ReadingStatus.READY, **fields
    )


def _report(
    status: ReportStatus = ReportStatus.FINAL,
    *,
    at: datetime | None = None,
    text: str = NEGATIVE_TEXT,
    accession: str = "ACC-1",
) -> ReportDetails:
    return ReportDetails(
        accession_number=accession,
        status=status,
        reported_at=at or timezone.now(),
        text=text,
        author="Reader A",
    )


def _receive(details: ReportDetails) -> bool:
    return receive_report(details, source=IntakeSource.HL7, now=timezone.now()).new


def test_a_report_for_an_unknown_accession_is_refused_and_stores_nothing() -> None:
    _study("ACC-1")
    with pytest.raises(ReportNotApplicable, match="accession") as refused:
        _receive(_report(accession="ACC-404"))
    assert "ACC-404" not in str(refused.value)  # identifiers never in messages
    with pytest.raises(ReportNotApplicable):
        _receive(_report(accession=""))
    assert not Report.objects.exists()


def test_the_same_report_sent_again_changes_nothing(ris: None) -> None:
    study = _study()
    details = _report()
    assert _receive(details) is True
    assert _receive(details) is False
    assert Report.objects.filter(study=study).count() == 1
    assert (
        StudyEvent.objects.filter(study=study, kind=StudyEvent.Kind.FINAL).count() == 1
    )


def test_in_ris_mode_a_final_report_ends_reading_at_the_ris_time(ris: None) -> None:
    study = _study()
    alert = AlertFactory.create(study=study)
    signed = timezone.now() - timedelta(minutes=7)
    _receive(_report(at=signed))
    entry = entry_of(study)
    assert entry.reading_status == ReadingStatus.FINAL
    assert entry.finalized_at == signed
    event = StudyEvent.objects.get(study=study, kind=StudyEvent.Kind.FINAL)
    assert (event.at, event.detail["source"], event.detail["via"]) == (
        signed,
        "ris",
        "hl7",
    )
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_preliminary_then_final_then_corrected_keep_the_first_times(ris: None) -> None:
    study = _study()
    t0 = timezone.now() - timedelta(hours=1)
    _receive(_report(ReportStatus.PRELIMINARY, at=t0, text="Prelim: " + POSITIVE_TEXT))
    entry = entry_of(study)
    assert (entry.reading_status, entry.preliminary_at) == (
        ReadingStatus.PRELIMINARY,
        t0,
    )
    _receive(_report(ReportStatus.FINAL, at=t0 + timedelta(minutes=20)))
    _receive(
        _report(
            ReportStatus.CORRECTED, at=t0 + timedelta(minutes=50), text=POSITIVE_TEXT
        )
    )
    # A late preliminary (out of order) moves nothing back.
    _receive(_report(ReportStatus.PRELIMINARY, at=t0 + timedelta(minutes=60)))
    entry = entry_of(study)
    assert entry.reading_status == ReadingStatus.FINAL
    assert entry.preliminary_at == t0
    assert entry.finalized_at == t0 + timedelta(minutes=20)  # the TAT's end
    kinds = list(
        StudyEvent.objects.filter(study=study, detail__source="ris").values_list(
            "kind", flat=True
        )
    )
    assert kinds == ["preliminary", "final", "corrected", "preliminary"]


def test_where_reading_ends_in_radtriage_a_report_moves_no_reading_state(
    settings: Any,
) -> None:
    settings.RADTRIAGE_READING_ENDS_IN = "radtriage"
    study = _study()
    _receive(_report())
    assert entry_of(study).reading_status == ReadingStatus.READY
    assert Report.objects.filter(study=study).exists()  # kept for the monitoring


def test_in_ris_mode_the_final_button_is_refused(
    ris: None, django_user_model: Any
) -> None:
    study = _study()
    reader = django_user_model.objects.create_user("reader", password="x" * 12)
    with pytest.raises(worklist_services.ReadingEndsInRis):
        worklist_services.mark_final(study.pk, reader, now=timezone.now())
    assert entry_of(study).reading_status == ReadingStatus.READY


@pytest.mark.parametrize(
    ("text", "label"),
    [
        (NEGATIVE_TEXT, ReportLabel.NEGATIVE),
        (POSITIVE_TEXT, ReportLabel.POSITIVE),
        (UNCERTAIN_TEXT, ReportLabel.UNCERTAIN),
        ("IMPRESSION: Normal study.", ReportLabel.NOT_MENTIONED),
    ],
)
def test_the_report_labels_each_scored_finding(text: str, label: ReportLabel) -> None:
    study = _study()
    FindingFactory.create(result=ScoreResultFactory.create(study=study), code="ICH")
    _receive(_report(text=text))
    stored = ReportFindingLabel.objects.get(study=study, code="ICH")
    assert stored.label == label
    assert stored.report.study_id == study.pk


def test_a_preliminary_never_replaces_the_final_reports_label() -> None:
    study = _study()
    FindingFactory.create(result=ScoreResultFactory.create(study=study), code="ICH")
    t0 = timezone.now()
    _receive(_report(ReportStatus.FINAL, at=t0, text=POSITIVE_TEXT))
    _receive(_report(ReportStatus.PRELIMINARY, at=t0 + timedelta(minutes=1)))
    assert ReportFindingLabel.objects.get(study=study).label == ReportLabel.POSITIVE
    _receive(_report(ReportStatus.CORRECTED, at=t0 + timedelta(minutes=2)))
    assert ReportFindingLabel.objects.get(study=study).label == ReportLabel.NEGATIVE


def test_a_report_the_worklist_cannot_apply_is_not_stored(
    ris: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All or nothing: the sender is told it failed and sends it again."""
    study = _study()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(worklist_services, "apply_ris_report", broken)
    with pytest.raises(RuntimeError):
        _receive(_report())
    assert not Report.objects.exists()
    assert not StudyEvent.objects.filter(study=study, kind="final").exists()


def test_in_auto_mode_reading_ends_in_the_ris_once_it_sends_reports(
    settings: Any, django_user_model: Any
) -> None:
    settings.RADTRIAGE_READING_ENDS_IN = "auto"
    first, second = _study("ACC-1"), _study("ACC-2")
    reader = django_user_model.objects.create_user("reader", password="x" * 12)
    # No report from the RIS yet: the readers' buttons end reading.
    worklist_services.mark_final(first.pk, reader, now=timezone.now())
    assert entry_of(first).reading_status == ReadingStatus.FINAL
    # The first report from the RIS ends its study's reading, and from then
    # on the RIS is where reading ends.
    _receive(_report(accession="ACC-2"))
    assert entry_of(second).reading_status == ReadingStatus.FINAL
    third = _study("ACC-3")
    with pytest.raises(worklist_services.ReadingEndsInRis):
        worklist_services.mark_final(third.pk, reader, now=timezone.now())
