"""The order's context where people need it: on the worklist row and on each
alert card; a cancelled order ends reading; a final report completes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import StudyFactory, entry_of
from tests.worklist.alert_data import add_finding, scored_study
from triage.models import Order, Study
from triage.order_details import OrderDetails, PatientDetails
from triage.orders import receive_order
from triage.report_intake import ReportDetails, receive_report
from triage.roles import Role
from triage.vocabulary import IntakeSource, OrderStatus, ReportStatus
from worklist import services
from worklist.alerts import services as alerts
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

REASON = "Sudden headache, anticoagulated"
CALLBACK = "+44 20 7946 0991"


def _order(study: Study, **fields: object) -> None:
    patient = study.patient
    receive_order(
        OrderDetails(
            accession_number=study.accession_number,
            patient=PatientDetails(patient.patient_id, patient.issuer_of_patient_id),
            reason_for_study=REASON,
            assigned_location="ED^RESUS^3",
            ordering_provider="Dr Lee (ED)",
            callback_number=CALLBACK,
            **fields,  # type: ignore[arg-type]
        ),
        source=IntakeSource.HL7,
        now=timezone.now(),
    )


def _study() -> Study:
    return StudyFactory.create(
        accession_number="ACC-7", reading_status=ReadingStatus.READY
    )


def test_the_row_shows_the_orders_reason_location_provider_and_call_back(
    login: Callable[..., Client],
) -> None:
    _order(_study())
    html = login(Role.RADIOLOGIST).get("/worklist/").content.decode()
    assert REASON in html
    assert "ED^RESUS^3" in html
    assert "Dr Lee (ED)" in html
    assert f'href="tel:{CALLBACK}"' in html


def test_a_change_of_reason_moves_the_rows_version(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = _study()
    with django_capture_on_commit_callbacks(execute=True):
        _order(study)
    before = entry_of(study).version
    patient = study.patient
    with django_capture_on_commit_callbacks(execute=True):
        receive_order(
            OrderDetails(
                accession_number=study.accession_number,
                patient=PatientDetails(
                    patient.patient_id, patient.issuer_of_patient_id
                ),
                reason_for_study="Fall, GCS 13",
            ),
            source=IntakeSource.HL7,
            now=timezone.now(),
        )
    assert entry_of(study).version > before  # a delta goes out


def test_the_alert_card_carries_the_call_back_number(
    login: Callable[..., Client],
) -> None:
    study = scored_study(accession_number="ACC-9")
    _order(study)
    add_finding(study)
    alerts.raise_alerts(study.pk, now=timezone.now())
    html = login(Role.CHARGE_TECHNOLOGIST).get("/alerts/").content.decode()
    assert "alert-card" in html
    assert f'href="tel:{CALLBACK}"' in html
    assert "Dr Lee (ED)" in html


def test_a_cancelled_study_cannot_be_claimed(
    make_user: Callable[..., object], django_capture_on_commit_callbacks: Any
) -> None:
    study = _study()
    with django_capture_on_commit_callbacks(execute=True):
        _order(study, cancelled=True, cancel_reason="Duplicate order")
    assert entry_of(study).reading_status == ReadingStatus.CANCELLED
    reader = make_user(Role.RADIOLOGIST)
    with pytest.raises(services.StudyCancelled):
        services.claim_study(study.pk, reader, now=timezone.now())  # type: ignore[arg-type]
    assert entry_of(study).claimed_by_id is None


def test_a_final_report_completes_the_order() -> None:
    study = _study()
    _order(study)
    receive_report(
        ReportDetails(
            accession_number="ACC-7",
            status=ReportStatus.FINAL,
            reported_at=datetime.now(UTC),
            text="IMPRESSION: No acute intracranial hemorrhage.",
        ),
        source=IntakeSource.HL7,
        now=timezone.now(),
    )
    assert Order.objects.get(study=study).status == OrderStatus.COMPLETED


def test_cancelled_studies_are_listed_apart_with_the_reason(
    login: Callable[..., Client], django_capture_on_commit_callbacks: Any
) -> None:
    study = _study()
    with django_capture_on_commit_callbacks(execute=True):
        _order(study, cancelled=True, cancel_reason="Duplicate order")
    client = login(Role.RADIOLOGIST)
    listed = client.get("/api/studies/").json()["results"]
    assert study.pk not in [row["id"] for row in listed]  # off the worklist
    cancelled = client.get("/api/studies/?status=cancelled").json()["results"]
    assert [row["id"] for row in cancelled] == [study.pk]
    client.put(
        "/api/worklist/filters/",
        {"reading_status": "cancelled"},
        content_type="application/json",
    )
    html = client.get("/worklist/").content.decode()
    assert "Duplicate order" in html
    assert 'class="claim"' not in html  # nothing to do on it but look
