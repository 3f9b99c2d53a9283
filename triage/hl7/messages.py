"""HL7 v2 messages as typed values: orders, reports, patient updates and merges.

Plain Python (no Django): a python-hl7 ``Message`` goes in, a frozen dataclass
comes out, or a :class:`MessageError` naming the field at fault (never its
value: messages carry PHI, and the reason travels to logs and ACKs). Sites fill
different fields with the same thing; where so, the first non-empty field in
the order each function documents wins.

The library's field access returns unescaped text (``\\F\\`` is ``|``); HL7's
null (``""``, "delete this value") is read as empty, as a receiver that keeps
what it had would.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

import hl7
import hl7.containers
import hl7.util

from triage.order_details import known_order_priority, known_patient_class
from triage.vocabulary import OrderPriority, PatientClass, ReportStatus


def _drop(record: logging.LogRecord) -> bool:
    return False


# python-hl7 logs the whole field when an escape sequence puzzles it, and a
# segment's text when it comes before MSH: PHI. Its loggers are named after
# their files' paths, so they are silenced here, where the library is used, by
# a filter: ``logger.disabled`` would be undone by the next logging set-up
# (uvicorn's, in ``serve``), which re-enables every logger it does not name.
for _library_logger in (hl7.util.logger, hl7.containers.logger):
    if _drop not in _library_logger.filters:
        _library_logger.addFilter(_drop)

HL7_NULL = '""'
# DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_DTM = re.compile(r"\d{4}(?:\d{2}){0,5}(?:\.\d{1,4})?(?:[+-]\d{4})?")

# HL7 table 0357 (message error condition codes), as used in ERR-3.
ERR_SEGMENT_SEQUENCE = 100
ERR_REQUIRED_FIELD_MISSING = 101
ERR_DATA_TYPE = 102
ERR_TABLE_VALUE_NOT_FOUND = 103
ERR_UNSUPPORTED_MESSAGE_TYPE = 200
ERR_UNSUPPORTED_EVENT_CODE = 201
ERR_UNKNOWN_KEY = 204
ERR_APPLICATION_INTERNAL = 207


class MessageError(Exception):
    """A message that cannot be read as its type says: a field missing or malformed.

    ``reason`` names the field and what is wrong with it, never the value.
    ``code`` is the HL7 table 0357 error code for the ERR segment.
    """

    def __init__(self, reason: str, code: int = ERR_REQUIRED_FIELD_MISSING) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class UnsupportedMessage(MessageError):
    """A message type or trigger event this receiver does not read."""

    def __init__(self, reason: str, code: int = ERR_UNSUPPORTED_MESSAGE_TYPE) -> None:
        super().__init__(reason, code)


@dataclass(frozen=True, slots=True)
class MessageHeader:
    """What MSH says: who sent the message, what it is, its control id (MSH-10)."""

    message_type: str
    trigger_event: str
    control_id: str
    sending_application: str
    sending_facility: str
    version: str


@dataclass(frozen=True, slots=True)
class PatientIdentity:
    """PID-3's first identifier and its assigning authority, plus demographics.

    ``name`` is in DICOM PN order (family^given^middle^prefix^suffix) so that it
    compares with what images carry; ``birth_date`` is None when PID-7 is empty
    or gives less than a day.
    """

    patient_id: str
    issuer_of_patient_id: str
    name: str
    birth_date: date | None
    sex: str


@dataclass(frozen=True, slots=True)
class OrderMessage:
    """One imaging order (ORM^O01, OMI^O23): new, changed or cancelled.

    ``priority`` and ``patient_class`` are None when the message does not say
    (an unknown code counts as not saying), so the receiver keeps what it has.
    """

    header: MessageHeader
    order_control: str
    accession_number: str
    study_instance_uid: str
    patient: PatientIdentity
    patient_class: PatientClass | None
    assigned_location: str
    priority: OrderPriority | None
    procedure_code: str
    procedure_text: str
    reason_for_study: str
    ordering_provider: str
    callback_number: str
    cancelled: bool
    cancel_reason: str


@dataclass(frozen=True, slots=True)
class ReportMessage:
    """A radiology report from the RIS (ORU^R01, MDM^T02).

    ``observed_at`` is the report's status time (aware), None if not sent;
    ``text`` is the report's lines joined with newlines.
    """

    header: MessageHeader
    accession_number: str
    status: ReportStatus
    observed_at: datetime | None
    text: str
    radiologist: str


@dataclass(frozen=True, slots=True)
class PatientUpdate:
    """New demographics for a known patient (ADT^A08, ADT^A31)."""

    header: MessageHeader
    patient: PatientIdentity


@dataclass(frozen=True, slots=True)
class PatientMerge:
    """Two identifiers found to be one patient (ADT^A40): merged into surviving."""

    header: MessageHeader
    surviving_patient_id: str
    surviving_issuer: str
    merged_patient_id: str
    merged_issuer: str


ParsedMessage = OrderMessage | ReportMessage | PatientUpdate | PatientMerge


# ---- field access -------------------------------------------------------------


def _segments(message: Any, segment_id: str) -> list[Any]:
    try:
        return list(message.segments(segment_id))
    except KeyError:
        return []


def _segment(message: Any, segment_id: str) -> Any | None:
    found = _segments(message, segment_id)
    return found[0] if found else None


def _value(
    segment: Any | None,
    field: int,
    component: int = 1,
    subcomponent: int = 1,
    repeat: int = 1,
) -> str:
    """One leaf of ``segment``, stripped; "" when absent (or HL7 null)."""
    if segment is None:
        return ""
    try:
        value = segment.extract_field(1, field, repeat, component, subcomponent)
    except (IndexError, TypeError):
        return ""
    text = str(value).strip()
    return "" if text == HL7_NULL else text


def _repeat_count(segment: Any | None, field: int) -> int:
    if segment is None or field >= len(segment):
        return 0
    item = segment(field)
    return len(item) if isinstance(item, hl7.Field) else 1


def _first(*values: str) -> str:
    return next((v for v in values if v), "")


def _person_name(parts: list[str]) -> str:
    """Display text of a person's name from [prefix, given, middle, family, suffix]."""
    return " ".join(p for p in parts if p)


def _xcn_display(segment: Any | None, field: int) -> str:
    """An XCN (id^family^given^middle^suffix^prefix^degree) as display text."""
    name = _person_name(
        [
            _value(segment, field, 6),
            _value(segment, field, 3),
            _value(segment, field, 4),
            _value(segment, field, 2),
            _value(segment, field, 5),
            _value(segment, field, 7),
        ]
    )
    return name or _value(segment, field, 1)


def _xtn_display(segment: Any | None, field: int) -> str:
    """An XTN telephone number as text: the 2.3 formatted number, else 2.5 parts."""
    formatted = _value(segment, field, 1)
    if formatted:
        return formatted
    country, area, local, extension = (_value(segment, field, n) for n in (5, 6, 7, 8))
    number = " ".join(
        p
        for p in (f"+{country}" if country else "", f"({area})" if area else "", local)
        if p
    )
    if number and extension:
        number += f" ext. {extension}"
    return number


def _coded_text(segment: Any | None, field: int) -> str:
    """A CE/CWE's text (component 2), else its code, all repetitions joined."""
    texts = [
        _first(_value(segment, field, 2, repeat=r), _value(segment, field, 1, repeat=r))
        for r in range(1, _repeat_count(segment, field) + 1)
    ]
    return "; ".join(t for t in texts if t)


# ---- timestamps ---------------------------------------------------------------


def parse_timestamp(value: str, zone: tzinfo, field: str) -> datetime | None:
    """An HL7 DTM/TS (``YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]``) as an aware time.

    Args:
        value: the field's text; empty gives None.
        zone: the site's time zone, for a timestamp sent without an offset.
        field: the field's name (``"OBR-22"``) for the error's reason.

    Returns:
        The instant, at the precision sent (missing parts are the start of the
        period), or None for an empty value.

    Raises:
        MessageError: the value is not an HL7 timestamp (named by ``field``).
    """
    # TS (2.3-2.5) carries a degree-of-precision component after the time.
    text = value.split("^", 1)[0].strip()
    if not text or text == HL7_NULL:
        return None
    if not _DTM.fullmatch(text):
        # The library reads the longest valid prefix ("2026-12-04" as 2026).
        raise MessageError(f"{field} is not a valid HL7 timestamp", ERR_DATA_TYPE)
    try:
        parsed: datetime | None = hl7.parse_datetime(text)
    except (ValueError, OverflowError):
        raise MessageError(
            f"{field} is not a valid HL7 timestamp", ERR_DATA_TYPE
        ) from None
    if parsed is None:
        return None
    offset = parsed.utcoffset()
    if offset is None:
        return parsed.replace(tzinfo=zone)
    return parsed.replace(tzinfo=timezone(timedelta(seconds=offset.total_seconds())))


def _timestamp(
    segment: Any | None, field: int, zone: tzinfo, name: str
) -> datetime | None:
    return parse_timestamp(_value(segment, field, 1), zone, name)


def _birth_date(segment: Any | None) -> date | None:
    text = _value(segment, 7, 1)
    if not text:
        return None
    digits = text[:8]
    if len(digits) < 8:
        return None  # year or month only: no day to record
    try:
        return date(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise MessageError(
            "PID-7 birth date is not a valid date", ERR_DATA_TYPE
        ) from None


# ---- vocabularies -------------------------------------------------------------

# ORC-1 codes that end an order (cancel, discontinue, and their confirmations).
CANCELLING_ORDER_CONTROLS = frozenset({"CA", "DC", "OC", "OD", "CR", "DR"})

# OBR-25 (table 0123). Results "some available" or "stored, not verified" are
# readable but not signed: preliminary.
OBR_REPORT_STATUSES: dict[str, ReportStatus] = {
    "P": ReportStatus.PRELIMINARY,
    "A": ReportStatus.PRELIMINARY,
    "R": ReportStatus.PRELIMINARY,
    "F": ReportStatus.FINAL,
    "C": ReportStatus.CORRECTED,
}

# TXA-17 (table 0271): signed is final; documented or pre-authenticated is a
# preliminary report. Dictated, in progress and incomplete carry no report yet.
TXA_REPORT_STATUSES: dict[str, ReportStatus] = {
    "AU": ReportStatus.FINAL,
    "LA": ReportStatus.FINAL,
    "PA": ReportStatus.PRELIMINARY,
    "DO": ReportStatus.PRELIMINARY,
}

REPORT_TEXT_TYPES = frozenset({"TX", "FT", "ST"})


# ---- segments -----------------------------------------------------------------


def parse_header(message: Any) -> MessageHeader:
    """MSH of a parsed message.

    Raises:
        MessageError: MSH, MSH-9 or MSH-10 is missing.
    """
    msh = _segment(message, "MSH")
    if msh is None:
        raise MessageError("MSH segment missing", ERR_SEGMENT_SEQUENCE)
    message_type = _value(msh, 9, 1).upper()
    if not message_type:
        raise MessageError("MSH-9 message type missing")
    control_id = _value(msh, 10, 1)
    if not control_id:
        raise MessageError("MSH-10 message control id missing")
    return MessageHeader(
        message_type=message_type,
        trigger_event=_value(msh, 9, 2).upper(),
        control_id=control_id,
        sending_application=_value(msh, 3, 1),
        sending_facility=_value(msh, 4, 1),
        version=_value(msh, 12, 1),
    )


def _patient_identity(pid: Any | None, segment: str = "PID") -> PatientIdentity:
    if pid is None:
        raise MessageError(f"{segment} segment missing", ERR_SEGMENT_SEQUENCE)
    patient_id = _value(pid, 3, 1)
    if not patient_id:
        raise MessageError(f"{segment}-3 patient identifier missing")
    # XPN: family^given^middle^suffix^prefix; DICOM PN: ...^prefix^suffix.
    family, given, middle, suffix, prefix = (_value(pid, 5, n) for n in range(1, 6))
    name = "^".join([family, given, middle, prefix, suffix]).rstrip("^")
    return PatientIdentity(
        patient_id=patient_id,
        # CX-4 is an HD: namespace id, else the universal id.
        issuer_of_patient_id=_first(_value(pid, 3, 4, 1), _value(pid, 3, 4, 2)),
        name=name,
        birth_date=_birth_date(pid),
        sex=_value(pid, 8, 1).upper()[:16],
    )


def _one_order_group(message: Any) -> None:
    if len(_segments(message, "ORC")) > 1:
        # Splitting orders belongs to the interface engine; taking the first and
        # dropping the rest would lose orders silently.
        raise MessageError(
            "more than one order (ORC) in one message is not supported",
            ERR_SEGMENT_SEQUENCE,
        )


def parse_order(message: Any, header: MessageHeader) -> OrderMessage:
    """An ORM^O01 or OMI^O23 as one :class:`OrderMessage`.

    Accession number: IPC-1 (OMI's field for it), else OBR-18 (placer field 1,
    where most RIS put it), else ORC-3 (the filler order number). Study Instance
    UID: ZDS-1, else IPC-3. Priority: TQ1-9 (2.5+), else ORC-7 component 6,
    else OBR-27 component 6 (both deprecated in 2.5 in favour of TQ1). Ordering
    provider ORC-12, else OBR-16; call-back number ORC-14, else OBR-17.

    Raises:
        MessageError: no ORC-1, no accession number, no PID-3, or more than one
            order in the message.
    """
    _one_order_group(message)
    orc = _segment(message, "ORC")
    obr = _segment(message, "OBR")
    ipc = _segment(message, "IPC")
    order_control = _value(orc, 1, 1).upper()
    if not order_control:
        raise MessageError("ORC-1 order control missing")
    accession = _first(_value(ipc, 1, 1), _value(obr, 18, 1), _value(orc, 3, 1))
    if not accession:
        raise MessageError("accession number missing (IPC-1, OBR-18 and ORC-3 empty)")
    pv1 = _segment(message, "PV1")
    location = "^".join(_value(pv1, 3, n) for n in (1, 2, 3)).rstrip("^")
    priority_code = _first(
        _value(_segment(message, "TQ1"), 9, 1), _value(orc, 7, 6), _value(obr, 27, 6)
    )
    cancelled = order_control in CANCELLING_ORDER_CONTROLS
    return OrderMessage(
        header=header,
        order_control=order_control,
        accession_number=accession,
        study_instance_uid=_first(
            _value(_segment(message, "ZDS"), 1, 1), _value(ipc, 3, 1)
        ),
        patient=_patient_identity(_segment(message, "PID")),
        patient_class=known_patient_class(_value(pv1, 2, 1)),
        assigned_location=location,
        priority=known_order_priority(priority_code),
        procedure_code=_value(obr, 4, 1),
        procedure_text=_value(obr, 4, 2),
        reason_for_study=_coded_text(obr, 31),
        ordering_provider=_first(_xcn_display(orc, 12), _xcn_display(obr, 16)),
        callback_number=_first(_xtn_display(orc, 14), _xtn_display(obr, 17)),
        cancelled=cancelled,
        cancel_reason=_coded_text(orc, 16) if cancelled else "",
    )


def _report_lines(message: Any) -> list[str]:
    lines: list[str] = []
    for obx in _segments(message, "OBX"):
        if _value(obx, 2, 1).upper() not in REPORT_TEXT_TYPES:
            continue
        for repeat in range(1, _repeat_count(obx, 5) + 1):
            # Library unescaping turns FT's \.br\ into CR; lines are newline-separated.
            text = _value(obx, 5, 1, repeat=repeat)
            lines.extend(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))
    # Blank lines inside a report are its paragraphs; only the ends are trimmed.
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    return lines


def _interpreter_display(obr: Any | None) -> str:
    """OBR-32 (NDL: its first component a CNN in subcomponents) as display text."""
    name = _person_name(
        [
            _value(obr, 32, 1, 6),
            _value(obr, 32, 1, 3),
            _value(obr, 32, 1, 4),
            _value(obr, 32, 1, 2),
            _value(obr, 32, 1, 5),
        ]
    )
    return name or _value(obr, 32, 1, 1)


def parse_report(message: Any, header: MessageHeader, zone: tzinfo) -> ReportMessage:
    """An ORU^R01 or MDM^T02 as a :class:`ReportMessage`.

    Accession number: OBR-18, else ORC-3, else OBR-3, else (MDM) TXA-15 then
    TXA-14. Status: OBR-25, else (MDM) TXA-17. Time: OBR-22, else the first
    OBX-14, else (MDM) TXA-4. Radiologist: OBR-32, else (MDM) TXA-22, else TXA-5.
    Text: OBX-5 of every TX/FT/ST observation, each repetition a line.

    Raises:
        MessageError: no accession number, no or an unknown report status, or
            a malformed timestamp.
    """
    obr = _segment(message, "OBR")
    orc = _segment(message, "ORC")
    txa = _segment(message, "TXA")
    accession = _first(
        _value(obr, 18, 1),
        _value(orc, 3, 1),
        _value(obr, 3, 1),
        _value(txa, 15, 1),
        _value(txa, 14, 1),
    )
    if not accession:
        raise MessageError(
            "accession number missing (OBR-18, ORC-3, OBR-3, TXA-14/15 empty)"
        )
    obr_status = _value(obr, 25, 1).upper()
    txa_status = _value(txa, 17, 1).upper()
    status: ReportStatus | None
    if obr_status:
        status = OBR_REPORT_STATUSES.get(obr_status)
        if status is None:
            raise MessageError(
                "OBR-25 result status is not P, F or C (or A, R)",
                ERR_TABLE_VALUE_NOT_FOUND,
            )
    elif txa_status:
        status = TXA_REPORT_STATUSES.get(txa_status)
        if status is None:
            raise MessageError(
                "TXA-17 completion status carries no report (not AU, LA, PA or DO)",
                ERR_TABLE_VALUE_NOT_FOUND,
            )
    else:
        raise MessageError("report status missing (OBR-25 and TXA-17 empty)")
    first_obx = _segment(message, "OBX")
    observed_at = (
        _timestamp(obr, 22, zone, "OBR-22")
        or _timestamp(first_obx, 14, zone, "OBX-14")
        or _timestamp(txa, 4, zone, "TXA-4")
    )
    return ReportMessage(
        header=header,
        accession_number=accession,
        status=status,
        observed_at=observed_at,
        text="\n".join(_report_lines(message)),
        radiologist=_first(
            _interpreter_display(obr), _xcn_display(txa, 22), _xcn_display(txa, 5)
        ),
    )


def parse_patient_update(message: Any, header: MessageHeader) -> PatientUpdate:
    """An ADT^A08 or ADT^A31 as a :class:`PatientUpdate`.

    Raises:
        MessageError: no PID or PID-3.
    """
    return PatientUpdate(
        header=header, patient=_patient_identity(_segment(message, "PID"))
    )


def parse_patient_merge(message: Any, header: MessageHeader) -> PatientMerge:
    """An ADT^A40 as a :class:`PatientMerge` (PID-3 survives, MRG-1 is merged).

    Raises:
        MessageError: PID-3 or MRG-1 missing, or more than one merge in the message.
    """
    if len(_segments(message, "MRG")) > 1:
        raise MessageError(
            "more than one merge (MRG) in one message is not supported",
            ERR_SEGMENT_SEQUENCE,
        )
    surviving = _patient_identity(_segment(message, "PID"))
    mrg = _segment(message, "MRG")
    if mrg is None:
        raise MessageError("MRG segment missing", ERR_SEGMENT_SEQUENCE)
    merged_id = _value(mrg, 1, 1)
    if not merged_id:
        raise MessageError("MRG-1 prior patient identifier missing")
    return PatientMerge(
        header=header,
        surviving_patient_id=surviving.patient_id,
        surviving_issuer=surviving.issuer_of_patient_id,
        merged_patient_id=merged_id,
        merged_issuer=_first(_value(mrg, 1, 4, 1), _value(mrg, 1, 4, 2)),
    )


SUPPORTED: frozenset[tuple[str, str]] = frozenset(
    {
        ("ORM", "O01"),
        ("OMI", "O23"),
        ("ORU", "R01"),
        ("MDM", "T02"),
        ("ADT", "A08"),
        ("ADT", "A31"),
        ("ADT", "A40"),
    }
)


def check_supported(header: MessageHeader) -> None:
    """Raise :class:`UnsupportedMessage` unless ``header``'s type is read here."""
    if (header.message_type, header.trigger_event) not in SUPPORTED:
        known_type = any(t == header.message_type for t, _ in SUPPORTED)
        raise UnsupportedMessage(
            f"message type {header.message_type}^{header.trigger_event} "
            "is not supported",
            ERR_UNSUPPORTED_EVENT_CODE if known_type else ERR_UNSUPPORTED_MESSAGE_TYPE,
        )


def parse_message(message: Any, zone: tzinfo) -> ParsedMessage:
    """A parsed python-hl7 message as the typed value its MSH-9 names.

    Args:
        message: a single message from ``hl7.parse`` (not a batch).
        zone: the site's time zone, for timestamps sent without an offset.

    Raises:
        UnsupportedMessage: a type or trigger this receiver does not read.
        MessageError: a required field is missing or malformed.
    """
    header = parse_header(message)
    check_supported(header)
    if header.message_type in ("ORM", "OMI"):
        return parse_order(message, header)
    if header.message_type in ("ORU", "MDM"):
        return parse_report(message, header, zone)
    if header.trigger_event == "A40":
        return parse_patient_merge(message, header)
    return parse_patient_update(message, header)


def parse_er7(text: str) -> Any:
    """ER7 text as a python-hl7 ``Message``.

    Raises:
        MessageError: the text is not one HL7 message (a batch, a file, or not
            HL7 at all); the reason says which, never quotes the text.
    """
    stripped = text.strip()
    if stripped[:3] in ("BHS", "FHS"):
        raise UnsupportedMessage(
            "batches (BHS/FHS) are not supported: send one message per frame",
            ERR_UNSUPPORTED_MESSAGE_TYPE,
        )
    if not hl7.ishl7(stripped):
        if stripped.count("MSH") > 1:
            raise UnsupportedMessage(
                "more than one message in one frame is not supported",
                ERR_SEGMENT_SEQUENCE,
            )
        raise MessageError(
            "not an HL7 message (no MSH segment first)", ERR_SEGMENT_SEQUENCE
        )
    try:
        return hl7.parse(stripped)
    except Exception:  # noqa: BLE001 - the library raises whatever its splitting hits
        raise MessageError(
            "the message cannot be parsed", ERR_SEGMENT_SEQUENCE
        ) from None
