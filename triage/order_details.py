"""What an order, a demographics update or a patient merge says, transport aside.

Plain Python (no Django): the HL7 v2 parser, the REST intake and the FHIR
intake each turn their message into these values at the boundary, and
:mod:`triage.orders` applies them, so every path goes through one service.
Strings are stripped, codes normalised to :mod:`triage.vocabulary` members;
everything here is PHI except the codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from triage.vocabulary import OrderPriority, PatientClass

#: HL7 v2 table 0004 (PV1-2 Patient Class) onto RadTriage's classes. Preadmit
#: and recurring patients are seen as outpatients, obstetric patients are
#: admitted; commercial account and "not applicable" say nothing of urgency.
HL7_PATIENT_CLASSES: dict[str, PatientClass] = {
    "E": PatientClass.EMERGENCY,
    "I": PatientClass.INPATIENT,
    "O": PatientClass.OUTPATIENT,
    "P": PatientClass.OUTPATIENT,
    "R": PatientClass.OUTPATIENT,
    "B": PatientClass.INPATIENT,
    "C": PatientClass.UNKNOWN,
    "N": PatientClass.UNKNOWN,
    "U": PatientClass.UNKNOWN,
}

#: HL7 v2 table 0027 (ORC-7.6 / TQ1-9 / OBR-27.6 Priority) and FHIR's
#: request-priority codes onto RadTriage's order priorities. "As soon as
#: possible", pre-operative and timing-critical orders are urgent; callback
#: and "as needed" orders are routine.
ORDER_PRIORITY_CODES: dict[str, OrderPriority] = {
    "S": OrderPriority.STAT,
    "STAT": OrderPriority.STAT,
    "A": OrderPriority.URGENT,
    "ASAP": OrderPriority.URGENT,
    "U": OrderPriority.URGENT,
    "URGENT": OrderPriority.URGENT,
    "P": OrderPriority.URGENT,
    "PREOP": OrderPriority.URGENT,
    "T": OrderPriority.URGENT,
    "TS": OrderPriority.URGENT,
    "TM": OrderPriority.URGENT,
    "TH": OrderPriority.URGENT,
    "R": OrderPriority.ROUTINE,
    "ROUTINE": OrderPriority.ROUTINE,
    "C": OrderPriority.ROUTINE,
    "PRN": OrderPriority.ROUTINE,
    "TD": OrderPriority.ROUTINE,
    "TW": OrderPriority.ROUTINE,
    "TL": OrderPriority.ROUTINE,
}


def known_patient_class(code: str) -> PatientClass | None:
    """The patient class an HL7 PV1-2 code or a class name stands for; None
    for an empty or unknown code (a message that does not say)."""
    text = code.strip()
    if text.upper() in HL7_PATIENT_CLASSES:
        return HL7_PATIENT_CLASSES[text.upper()]
    try:
        return PatientClass(text.lower())
    except ValueError:
        return None


def patient_class_from_code(code: str) -> PatientClass:
    """:func:`known_patient_class`, UNKNOWN where the code says nothing (the
    order still applies, it just says nothing of where the patient is)."""
    return known_patient_class(code) or PatientClass.UNKNOWN


def known_order_priority(code: str) -> OrderPriority | None:
    """The order priority an HL7 or FHIR priority code stands for: "S", "A",
    "R"... (HL7 tables 0027 and 0485, also as the first component of a TQ
    value), or "stat", "asap", "urgent", "routine" (FHIR); None for an empty
    or unknown code."""
    return ORDER_PRIORITY_CODES.get(code.strip().upper().replace("-", ""))


def order_priority_from_code(code: str) -> OrderPriority:
    """:func:`known_order_priority`, ROUTINE where the code says nothing."""
    return known_order_priority(code) or OrderPriority.ROUTINE


@dataclass(frozen=True, slots=True)
class PatientDetails:
    """A patient's identifiers and demographics (PID; ADT^A08/A31).

    Attributes:
        patient_id: the identifier the studies carry (DICOM PatientID, PID-3.1).
        issuer_of_patient_id: its assigning authority (PID-3.4); "" when none.
        patient_name: DICOM PN form ("FAMILY^GIVEN"); "" when not sent.
        birth_date: the date of birth, or None when not sent.
        sex: "F", "M", "O" or "" as sent (DICOM PatientSex).
    """

    patient_id: str
    issuer_of_patient_id: str = ""
    patient_name: str = ""
    birth_date: date | None = None
    sex: str = ""

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise ValueError("a patient needs an identifier")
        if len(self.patient_id) > 64 or len(self.issuer_of_patient_id) > 64:
            raise ValueError("a patient identifier or issuer has at most 64 characters")


@dataclass(frozen=True, slots=True)
class PatientMergeDetails:
    """An ADT^A40 merge: the merged patient's records now belong to another.

    Attributes:
        surviving: the patient who remains (PID).
        merged_patient_id: the identifier that goes away (MRG-1.1).
        merged_issuer_of_patient_id: its assigning authority (MRG-1.4).
    """

    surviving: PatientDetails
    merged_patient_id: str
    merged_issuer_of_patient_id: str = ""

    def __post_init__(self) -> None:
        if not self.merged_patient_id.strip():
            raise ValueError("a merge needs the merged patient's identifier")


@dataclass(frozen=True, slots=True)
class OrderDetails:
    """One imaging order as the RIS sent it (ORM^O01, OMI^O23, FHIR, REST).

    Attributes:
        accession_number: the key orders and studies meet on (OBR-18, ORC-3,
            IPC-1; DICOM AccessionNumber), at most 64 characters.
        patient: who the order is for.
        patient_class: where the patient is (PV1-2).
        order_priority: how urgent (ORC-7 / TQ1-9 / OBR-27).
        study_instance_uid: the expected study's UID when the RIS assigned one
            (ZDS-1, IPC-3); "" when not sent.
        placer_order_number: the ordering system's number (ORC-2); "" if none.
        filler_order_number: the RIS's number (ORC-3); "" if none.
        assigned_location: where the patient is, as text ("ED^BAY3", PV1-3).
        procedure_code: the ordered procedure's code (OBR-4.1).
        procedure_text: the ordered procedure's name (OBR-4.2).
        reason_for_study: why it was ordered (OBR-31), as text.
        ordering_provider: who ordered it, for display (ORC-12 / OBR-16).
        callback_number: whom the technologist calls (ORC-14 / OBR-17).
        ordered_at: when it was ordered (ORC-9), aware; None when not sent.
        cancelled: the order was cancelled or discontinued (ORC-1 CA / DC,
            FHIR status revoked).
        cancel_reason: why, as the sender said it (ORC-16); shown to readers.
    """

    accession_number: str
    patient: PatientDetails
    patient_class: PatientClass = PatientClass.UNKNOWN
    order_priority: OrderPriority = OrderPriority.ROUTINE
    study_instance_uid: str = ""
    placer_order_number: str = ""
    filler_order_number: str = ""
    assigned_location: str = ""
    procedure_code: str = ""
    procedure_text: str = ""
    reason_for_study: str = ""
    ordering_provider: str = ""
    callback_number: str = ""
    ordered_at: datetime | None = None
    cancelled: bool = False
    cancel_reason: str = ""

    def __post_init__(self) -> None:
        if not self.accession_number.strip():
            raise ValueError("an order needs an accession number")
        if len(self.accession_number) > 64:
            raise ValueError("an accession number has at most 64 characters")
        if len(self.study_instance_uid) > 64:
            raise ValueError("a Study Instance UID has at most 64 characters")
        if self.ordered_at is not None and self.ordered_at.tzinfo is None:
            raise ValueError("ordered_at must be an aware time")
