"""The HL7 v2 messages RadTriage applies, each through the one service of its kind.

Imported by ``TriageConfig.ready``, so every process that reads HL7 (the
listener, ``serve``, ``hl7_replay``) applies messages the same way. Each
handler turns the parsed message into the transport-independent details the
services take (the REST and FHIR intakes build the same ones) and maps the
services' refusals onto AE with the reason. Handlers run inside the
transaction that records the message's outcome.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.utils import timezone

from triage import orders
from triage.hl7.dispatch import NotApplicable, register
from triage.hl7.messages import (
    ERR_APPLICATION_INTERNAL,
    ERR_UNKNOWN_KEY,
    OrderMessage,
    PatientIdentity,
    PatientMerge,
    PatientUpdate,
    ReportMessage,
)
from triage.order_details import OrderDetails, PatientDetails, PatientMergeDetails
from triage.report_intake import ReportDetails, ReportNotApplicable, receive_report
from triage.vocabulary import IntakeSource, OrderPriority, PatientClass


@contextmanager
def _refusals_as_ae() -> Iterator[None]:
    try:
        yield
    except orders.OrderNotApplicable as exc:
        raise NotApplicable(exc.reason, ERR_APPLICATION_INTERNAL) from exc
    except ReportNotApplicable as exc:
        raise NotApplicable(str(exc), ERR_UNKNOWN_KEY) from exc


def _patient(identity: PatientIdentity) -> PatientDetails:
    return PatientDetails(
        patient_id=identity.patient_id,
        issuer_of_patient_id=identity.issuer_of_patient_id,
        patient_name=identity.name,
        birth_date=identity.birth_date,
        sex=identity.sex,
    )


def order_details(message: OrderMessage) -> OrderDetails:
    """What an ORM^O01 / OMI^O23 says, as the order service takes it."""
    return OrderDetails(
        accession_number=message.accession_number,
        patient=_patient(message.patient),
        patient_class=message.patient_class or PatientClass.UNKNOWN,
        order_priority=message.priority or OrderPriority.ROUTINE,
        study_instance_uid=message.study_instance_uid,
        assigned_location=message.assigned_location,
        procedure_code=message.procedure_code,
        procedure_text=message.procedure_text,
        reason_for_study=message.reason_for_study,
        ordering_provider=message.ordering_provider,
        callback_number=message.callback_number,
        cancelled=message.cancelled,
        cancel_reason=message.cancel_reason,
    )


def apply_order(message: OrderMessage) -> None:
    with _refusals_as_ae():
        orders.receive_order(
            order_details(message), source=IntakeSource.HL7, now=timezone.now()
        )


def apply_report(message: ReportMessage) -> None:
    now = timezone.now()
    reported_at: datetime = message.observed_at or now
    with _refusals_as_ae():
        receive_report(
            ReportDetails(
                accession_number=message.accession_number,
                status=message.status,
                reported_at=reported_at,
                text=message.text,
                author=message.radiologist,
            ),
            source=IntakeSource.HL7,
            now=now,
        )


def apply_patient_update(message: PatientUpdate) -> None:
    orders.update_patient(_patient(message.patient), now=timezone.now())


def apply_patient_merge(message: PatientMerge) -> None:
    orders.merge_patients(
        PatientMergeDetails(
            surviving=PatientDetails(
                patient_id=message.surviving_patient_id,
                issuer_of_patient_id=message.surviving_issuer,
            ),
            merged_patient_id=message.merged_patient_id,
            merged_issuer_of_patient_id=message.merged_issuer,
        ),
        now=timezone.now(),
    )


HANDLERS: tuple[tuple[str, str, Callable[..., None]], ...] = (
    ("ORM", "O01", apply_order),
    ("OMI", "O23", apply_order),
    ("ORU", "R01", apply_report),
    ("MDM", "T02", apply_report),
    ("ADT", "A08", apply_patient_update),
    ("ADT", "A31", apply_patient_update),
    ("ADT", "A40", apply_patient_merge),
)


def register_all() -> None:
    for message_type, trigger, handler in HANDLERS:
        register(message_type, trigger, handler)
