"""Applying orders, demographics updates and patient merges, from any transport.

The one writer of :class:`triage.models.Order`. HL7 v2 (ORM^O01, OMI^O23,
ADT^A08/A31/A40), ``POST /api/orders/`` and FHIR ``ServiceRequest`` each turn
their message into :mod:`triage.order_details` values and call one function
here. An order and its study's images meet by accession number (and Study
Instance UID when both carry one), whichever arrives second; the study's
order context (patient class, order priority: what the priority engine and
the scoring queue read) is written through :func:`triage.services.set_order_context`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q

from triage.models import Order, Patient, Study, StudyEvent
from triage.order_details import (
    OrderDetails,
    PatientDetails,
    PatientMergeDetails,
)
from triage.services import record_study_event, set_order_context
from triage.signals import study_changed
from triage.vocabulary import IntakeSource, OrderStatus

logger = logging.getLogger(__name__)


class OrderNotApplicable(Exception):
    """A well-formed order that cannot be applied; the reason holds no PHI.

    The HL7 path answers it with an AE acknowledgement, the HTTP intakes with
    a 409 (REST) or an OperationOutcome (FHIR).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class OrderOutcome:
    """What :func:`receive_order` did.

    Attributes:
        order_id: the order's internal ID (also its FHIR resource id).
        created: the accession was new.
        changed: anything was written (False: the same order again).
        status: the order's status afterwards.
        study_id: the study it is linked to, or None while the images are
            still to come.
    """

    order_id: int
    created: bool
    changed: bool
    status: OrderStatus
    study_id: int | None


@dataclass(frozen=True, slots=True)
class PatientOutcome:
    """What :func:`update_patient` changed: patient rows, orders, studies."""

    patients: int
    orders: int
    studies: int


@dataclass(frozen=True, slots=True)
class MergeOutcome:
    """What :func:`merge_patients` moved to the surviving patient."""

    surviving_patient_id: int | None
    studies: int
    orders: int


#: Order fields that come straight from :class:`OrderDetails`.
_DETAIL_FIELDS = (
    "study_instance_uid",
    "placer_order_number",
    "filler_order_number",
    "patient_class",
    "order_priority",
    "assigned_location",
    "procedure_code",
    "procedure_text",
    "reason_for_study",
    "ordering_provider",
    "callback_number",
    "ordered_at",
    "cancel_reason",
)
_PATIENT_FIELDS = (
    "patient_id",
    "issuer_of_patient_id",
    "patient_name",
    "patient_birth_date",
    "patient_sex",
)


def _clipped(values: dict[str, Any]) -> dict[str, Any]:
    """Texts cut to their column's length: a long location or provider name
    from a RIS is no reason to refuse an order (identifiers are checked in
    :mod:`triage.order_details`)."""
    for name, value in values.items():
        limit = getattr(Order._meta.get_field(name), "max_length", None)
        if isinstance(value, str) and limit is not None:
            values[name] = value[:limit]
    return values


def _order_values(details: OrderDetails) -> dict[str, Any]:
    patient = details.patient
    values: dict[str, Any] = {
        name: getattr(details, name)
        for name in _DETAIL_FIELDS
        if name != "cancel_reason"
    }
    values |= {
        "patient_id": patient.patient_id,
        "issuer_of_patient_id": patient.issuer_of_patient_id,
        "patient_name": patient.patient_name,
        "patient_birth_date": patient.birth_date,
        "patient_sex": patient.sex,
        "cancel_reason": details.cancel_reason if details.cancelled else "",
    }
    return _clipped(values)


@transaction.atomic
def receive_order(
    details: OrderDetails, *, source: IntakeSource, now: datetime
) -> OrderOutcome:
    """Create or update the order of ``details.accession_number``; idempotent.

    The same order again changes nothing. A study already received with that
    accession (and that Study Instance UID, when known) is linked, and its
    order context (patient class, order priority) applied: the worklist
    re-prioritises it once this commits and a delta goes out. A cancelled
    order takes its study off the worklist (the worklist's reading status
    "cancelled", with the reason shown); no image is ever deleted. Each change
    to a linked study is recorded on its timeline (ORDER_RECEIVED,
    ORDER_UPDATED, ORDER_CANCELLED).

    Args:
        details: the order as the sender said it.
        source: the transport it came by.
        now: the time of receipt.

    Returns:
        What was done.

    Raises:
        OrderNotApplicable: the Study Instance UID differs from the one this
            accession was received with before (by an order or by images).
    """
    order, created = _lock_or_create(details, source, now)
    uid = details.study_instance_uid
    if uid and order.study_instance_uid and order.study_instance_uid != uid:
        raise OrderNotApplicable(
            "the Study Instance UID differs from the one received before for "
            "this accession number"
        )
    study = _matching_study(order, details)
    values = _order_values(details)
    if not uid:
        # An update that leaves the UID out keeps the one known.
        values["study_instance_uid"] = order.study_instance_uid or (
            study.study_instance_uid if study is not None else ""
        )
    status = _status_for(details, study)
    values["status"] = status
    changed = [name for name, value in values.items() if getattr(order, name) != value]
    was_cancelled = order.status == OrderStatus.CANCELLED
    for name in changed:
        setattr(order, name, values[name])
    linked_now = study is not None and order.study_id != study.pk
    if linked_now:
        order.study = study
        changed.append("study")
    if changed:
        order.updated_at = now
        order.save(update_fields=[*changed, "updated_at"])

    if study is not None and changed:
        if status == OrderStatus.CANCELLED and not was_cancelled:
            kind = StudyEvent.Kind.ORDER_CANCELLED
        elif linked_now:
            kind = StudyEvent.Kind.ORDER_RECEIVED
        else:
            kind = StudyEvent.Kind.ORDER_UPDATED
        _apply_to_study(order, study, kind, now)
    logger.info(
        "order received order_id=%s study_id=%s created=%s changed=%s status=%s",
        order.pk,
        order.study_id,
        created,
        created or bool(changed),
        status,
    )
    return OrderOutcome(
        order_id=order.pk,
        created=created,
        changed=created or bool(changed),
        status=status,
        study_id=order.study_id,
    )


def _lock_or_create(
    details: OrderDetails, source: IntakeSource, now: datetime
) -> tuple[Order, bool]:
    """The accession's order, row-locked, and whether this call created it."""
    locked = Order.objects.select_for_update().filter(
        accession_number=details.accession_number
    )
    order = locked.first()
    if order is not None:
        return order, False
    # ON CONFLICT DO NOTHING: a concurrent first copy of the same order is no
    # unique violation for the database server to log, values and all.
    Order.objects.bulk_create(
        [
            Order(
                accession_number=details.accession_number,
                source=source,
                received_at=now,
                updated_at=now,
                **_order_values(details),
            )
        ],
        ignore_conflicts=True,
    )
    order = locked.get()
    # A concurrent copy that won the insert was received at another moment.
    return order, order.received_at == now


def _matching_study(order: Order, details: OrderDetails) -> Study | None:
    """The study this order is for, locked; None while its images are to come.

    Raises:
        OrderNotApplicable: the order and the study received disagree on the
            Study Instance UID or on the accession number.
    """
    uid = details.study_instance_uid or order.study_instance_uid
    if order.study_id is not None:
        linked = Study.objects.select_for_update().get(pk=order.study_id)
        if uid and linked.study_instance_uid != uid:
            raise OrderNotApplicable(
                "the Study Instance UID differs from the study received for "
                "this accession number"
            )
        return linked
    # of=self: the order join is an outer one, which PostgreSQL cannot lock.
    candidates = Study.objects.select_for_update(of=("self",)).filter(
        order__isnull=True
    )
    if uid:
        found = Study.objects.select_for_update().filter(study_instance_uid=uid).first()
        if found is not None:
            if found.accession_number not in ("", order.accession_number) or (
                Order.objects.filter(study=found).exists()
            ):
                raise OrderNotApplicable(
                    "the study of this Study Instance UID belongs to another "
                    "accession number"
                )
            return found
        if Study.objects.filter(accession_number=order.accession_number).exists():
            raise OrderNotApplicable(
                "the study received for this accession number has another "
                "Study Instance UID"
            )
        return None
    return (
        candidates.filter(accession_number=order.accession_number)
        .order_by("pk")
        .first()
    )


def _status_for(details: OrderDetails, study: Study | None) -> OrderStatus:
    if details.cancelled:
        return OrderStatus.CANCELLED
    return OrderStatus.SCHEDULED if study is None else OrderStatus.IN_PROGRESS


def _apply_to_study(
    order: Order, study: Study, kind: StudyEvent.Kind, now: datetime
) -> None:
    """Record ``kind`` on the study's timeline and copy the order context.

    The worklist hears of it once the transaction commits (``study_changed``)
    and re-prioritises the study, or takes it off the list when cancelled.
    """
    record_study_event(
        study.pk,
        kind,
        at=now,
        detail={"order_id": order.pk, "source": order.source, "status": order.status},
    )
    if (study.patient_class, study.order_priority) != (
        order.patient_class,
        order.order_priority,
    ):
        set_order_context(
            study.pk,
            patient_class=order.patient_class,  # type: ignore[arg-type]
            order_priority=order.order_priority,  # type: ignore[arg-type]
            now=now,
        )
    else:
        # Only what people read changed (reason, location, status).
        transaction.on_commit(
            partial(study_changed.send, sender=Study, study_id=study.pk), robust=True
        )


def link_order_to_new_study(study: Study, *, now: datetime) -> int | None:
    """Meet a study just created by ingest with the order waiting for it.

    Called by :func:`triage.services.record_instance` inside the transaction
    that creates the study, so the order context (and with it the scoring
    queue: urgent for STAT or emergency) is in place before anything else
    reads the study. The order matches by accession number, and by Study
    Instance UID when the order carries one.

    Returns:
        The linked order's ID, or None when no order waits for this study.
    """
    if not study.accession_number:
        return None
    order = (
        Order.objects.select_for_update()
        .filter(accession_number=study.accession_number, study__isnull=True)
        .filter(
            Q(study_instance_uid="") | Q(study_instance_uid=study.study_instance_uid)
        )
        .first()
    )
    if order is None:
        waiting = Order.objects.filter(
            accession_number=study.accession_number, study__isnull=True
        ).values_list("pk", flat=True)
        for order_id in waiting:
            # Same accession, another Study Instance UID: not this study's.
            logger.warning(
                "an order waits for another study of this accession "
                "order_id=%s study_id=%s",
                order_id,
                study.pk,
            )
        return None
    order.study = study
    order.study_instance_uid = study.study_instance_uid
    fields = ["study", "study_instance_uid", "updated_at"]
    if order.status == OrderStatus.SCHEDULED:
        order.status = OrderStatus.IN_PROGRESS
        fields.append("status")
    order.updated_at = now
    order.save(update_fields=fields)
    _apply_to_study(order, study, StudyEvent.Kind.ORDER_RECEIVED, now)
    logger.info("order met its study order_id=%s study_id=%s", order.pk, study.pk)
    return order.pk


def _same_patient(patient_id: str, issuer: str) -> Q:
    """Patients with this identifier: under this issuer, or under none.

    Modalities often leave IssuerOfPatientID empty where the RIS names the
    assigning authority; an identifier without an issuer is taken as the
    site's own.
    """
    issuers = {issuer, ""}
    return Q(patient_id=patient_id, issuer_of_patient_id__in=issuers)


@transaction.atomic
def update_patient(details: PatientDetails, *, now: datetime) -> PatientOutcome:
    """Apply new demographics (ADT^A08 / A31) to a patient and their orders.

    Fields sent empty are left as they are (HL7: empty means "not sent").
    The patient's studies are re-prioritised (the age component may move).

    Args:
        details: the patient's identifiers and demographics.
        now: the time of receipt.

    Returns:
        How many patient rows, orders and studies it touched.
    """
    changes: dict[str, Any] = {}
    if details.patient_name:
        changes["patient_name"] = details.patient_name
    if details.birth_date is not None:
        changes["patient_birth_date"] = details.birth_date
    if details.sex:
        changes["patient_sex"] = details.sex
    match = _same_patient(details.patient_id, details.issuer_of_patient_id)
    patient_ids = list(
        Patient.objects.select_for_update().filter(match).values_list("pk", flat=True)
    )
    if not changes:
        return PatientOutcome(len(patient_ids), 0, 0)
    Patient.objects.filter(pk__in=patient_ids).update(**changes)
    orders = Order.objects.filter(match).update(**changes, updated_at=now)
    study_ids = list(
        Study.objects.filter(patient_id__in=patient_ids).values_list("pk", flat=True)
    )
    _announce(study_ids)
    logger.info(
        "patient demographics updated patients=%s orders=%s studies=%s",
        len(patient_ids),
        orders,
        len(study_ids),
    )
    return PatientOutcome(len(patient_ids), orders, len(study_ids))


@transaction.atomic
def merge_patients(details: PatientMergeDetails, *, now: datetime) -> MergeOutcome:
    """Apply an ADT^A40 merge: the merged patient's studies and orders move.

    The surviving patient is created from ``details.surviving`` when not yet
    known here; the merged patient's row, left without studies, is removed
    (its identifier is retired). Each moved study records a PATIENT_MERGED
    event (internal IDs only) and is re-announced to the worklist. A merge
    of a patient unknown here changes nothing and is no error.

    Args:
        details: the surviving patient and the merged identifier.
        now: the time of receipt.

    Returns:
        The surviving patient's internal ID (None when nothing was merged) and
        how many studies and orders moved.
    """
    surviving = details.surviving
    merged = list(
        Patient.objects.select_for_update()
        .filter(
            _same_patient(
                details.merged_patient_id, details.merged_issuer_of_patient_id
            )
        )
        .exclude(
            patient_id=surviving.patient_id,
            issuer_of_patient_id=surviving.issuer_of_patient_id,
        )
    )
    orders = Order.objects.filter(
        _same_patient(details.merged_patient_id, details.merged_issuer_of_patient_id)
    ).update(
        patient_id=surviving.patient_id,
        issuer_of_patient_id=surviving.issuer_of_patient_id,
        updated_at=now,
    )
    if not merged:
        return MergeOutcome(None, 0, orders)
    first = merged[0]
    target, _ = Patient.objects.select_for_update().get_or_create(
        patient_id=surviving.patient_id,
        issuer_of_patient_id=surviving.issuer_of_patient_id,
        defaults={
            "patient_name": surviving.patient_name or first.patient_name,
            "patient_birth_date": surviving.birth_date or first.patient_birth_date,
            "patient_sex": surviving.sex or first.patient_sex,
        },
    )
    merged_ids = [p.pk for p in merged]
    study_ids = list(
        Study.objects.select_for_update()
        .filter(patient_id__in=merged_ids)
        .values_list("pk", flat=True)
    )
    Study.objects.filter(pk__in=study_ids).update(patient=target, updated_at=now)
    for study_id in study_ids:
        record_study_event(
            study_id,
            StudyEvent.Kind.PATIENT_MERGED,
            at=now,
            detail={"from_patient_id": merged_ids, "to_patient_id": target.pk},
        )
    Patient.objects.filter(pk__in=merged_ids).delete()
    _announce(study_ids)
    logger.info(
        "patients merged into patient_id=%s studies=%s orders=%s",
        target.pk,
        len(study_ids),
        orders,
    )
    return MergeOutcome(target.pk, len(study_ids), orders)


def _announce(study_ids: list[int]) -> None:
    for study_id in study_ids:
        transaction.on_commit(
            partial(study_changed.send, sender=Study, study_id=study_id), robust=True
        )


def record_reported(study_id: int, *, now: datetime) -> None:
    """The study's final report arrived: its order is completed.

    A cancelled order stays cancelled (a report on it is kept, and shown, but
    does not bring the order back).
    """
    Order.objects.filter(study_id=study_id).exclude(
        status__in=[OrderStatus.CANCELLED, OrderStatus.COMPLETED]
    ).update(status=OrderStatus.COMPLETED, updated_at=now)
