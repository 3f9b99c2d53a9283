"""HL7 messages applied through the real services (the glue): orders before and
after images, reports ending reading and labelling findings, ADT updates and
merges, and each refusal acknowledged with its code."""

from __future__ import annotations

from typing import Any

import hl7
import pytest
from django.utils import timezone

from inference.models import ReportFindingLabel
from inference.vocabulary import ReportLabel
from tests.factories import (
    FindingFactory,
    PatientFactory,
    ScoreResultFactory,
    StudyFactory,
    entry_of,
)
from tests.triage import hl7_samples as samples
from triage.hl7.services import receive_message
from triage.models import HL7Message, Order, Report, Study
from triage.vocabulary import OrderPriority, PatientClass
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


PHI = ("MRN12345", "DOE", "JANE", "19700315")


def send(text: str) -> tuple[str, str, HL7Message]:
    receipt = receive_message(text, remote_host="10.0.0.5", now=timezone.now())
    ack = hl7.parse(receipt.ack)
    msa = ack.segment("MSA")
    row = HL7Message.objects.get(pk=receipt.message_id)
    return str(msa.extract_field(1, 1)), str(msa.extract_field(1, 3)), row


def _imaged_study(accession: str = "ACC3003", **fields: Any) -> Study:
    patient = PatientFactory.create(
        patient_id="MRN12345", issuer_of_patient_id="GENHOSP"
    )
    return StudyFactory.create(
        patient=patient,
        accession_number=accession,
        reading_status=ReadingStatus.READY,
        **fields,
    )


def test_an_order_before_the_images_waits_for_them_and_gives_them_its_context() -> None:
    code, _, row = send(samples.orm())
    assert code == "AA"
    assert row.outcome == "applied"
    order = Order.objects.get(accession_number="ACC3003")
    assert order.study is None
    assert (order.patient_class, order.order_priority) == (
        PatientClass.EMERGENCY,
        OrderPriority.STAT,
    )
    assert "anticoagulants" in order.reason_for_study


def test_an_order_after_the_images_sets_the_studys_order_context(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = _imaged_study()
    with django_capture_on_commit_callbacks(execute=True):
        assert send(samples.orm())[0] == "AA"
    study.refresh_from_db()
    assert (study.patient_class, study.order_priority) == (
        PatientClass.EMERGENCY,
        OrderPriority.STAT,
    )
    reasons = [c["reason"] for c in entry_of(study).priority_components]
    assert ", ".join(reasons).startswith("STAT order, emergency")


def test_a_final_report_ends_reading_in_ris_mode_and_labels_the_finding(
    settings: Any,
) -> None:
    settings.RADTRIAGE_READING_ENDS_IN = "ris"
    study = _imaged_study()
    FindingFactory.create(result=ScoreResultFactory.create(study=study), code="ICH")
    code, _, row = send(samples.oru())
    assert (code, row.outcome) == ("AA", "applied")
    entry = entry_of(study)
    assert entry.reading_status == ReadingStatus.FINAL
    assert entry.finalized_at is not None
    report = Report.objects.get(study=study)
    assert "Negative for bleed" in report.text
    label = ReportFindingLabel.objects.get(study=study, code="ICH")
    assert label.label == ReportLabel.NEGATIVE


def test_a_report_before_its_study_is_refused_with_ae_and_applies_later() -> None:
    code, reason, row = send(samples.oru(control_id="ORU-EARLY"))
    assert code == "AE"
    assert "accession" in reason
    assert not any(value in reason for value in PHI)
    assert row.outcome == "refused"
    assert not Report.objects.exists()
    # The images arrive; the RIS sends the report again under a new control id.
    study = _imaged_study()
    assert send(samples.oru(control_id="ORU-AGAIN"))[0] == "AA"
    assert Report.objects.filter(study=study).count() == 1


def test_a_repeated_control_id_is_acknowledged_again_and_changes_nothing() -> None:
    study = _imaged_study()
    first = send(samples.oru(control_id="ORU-1"))
    again = send(samples.oru(control_id="ORU-1"))
    assert first[0] == again[0] == "AA"
    assert again[2].outcome == "duplicate"
    assert Report.objects.filter(study=study).count() == 1


def test_a_contradicting_study_uid_is_refused_with_ae() -> None:
    _imaged_study("ACC7007", study_instance_uid="1.2.3.4.5")
    code, reason, row = send(samples.omi())  # carries another UID for ACC7007
    assert code == "AE", reason
    assert row.outcome == "refused"
    assert not any(value in reason for value in PHI)


def test_adt_updates_and_merges_reach_the_patients() -> None:
    study = _imaged_study()
    assert send(samples.adt_a08())[0] == "AA"
    study.patient.refresh_from_db()
    assert str(study.patient.patient_birth_date) == "1970-03-16"
    merged = PatientFactory.create(
        patient_id="MRN99999", issuer_of_patient_id="GENHOSP"
    )
    other = StudyFactory.create(patient=merged, accession_number="ACC-OLD")
    assert send(samples.adt_a40())[0] == "AA"
    other.refresh_from_db()
    assert other.patient_id == study.patient_id
