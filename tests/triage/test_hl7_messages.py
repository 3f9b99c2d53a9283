"""HL7 v2 messages read into typed values (triage.hl7.messages): no database."""

from __future__ import annotations

import logging.config
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from tests.triage import hl7_samples as samples
from triage.hl7.messages import (
    ERR_DATA_TYPE,
    ERR_UNSUPPORTED_EVENT_CODE,
    ERR_UNSUPPORTED_MESSAGE_TYPE,
    MessageError,
    OrderMessage,
    PatientMerge,
    PatientUpdate,
    ReportMessage,
    UnsupportedMessage,
    parse_er7,
    parse_message,
    parse_timestamp,
)
from triage.order_details import known_order_priority, known_patient_class
from triage.vocabulary import OrderPriority, PatientClass, ReportStatus

PARIS = ZoneInfo("Europe/Paris")
# What the samples' patient is called and numbered: never in an error's reason.
PHI = ("MRN12345", "DOE", "JANE", "19700315", "998877")


def parse(text: str) -> object:
    return parse_message(parse_er7(text), PARIS)


def order(text: str) -> OrderMessage:
    parsed = parse(text)
    assert isinstance(parsed, OrderMessage)
    return parsed


def report(text: str) -> ReportMessage:
    parsed = parse(text)
    assert isinstance(parsed, ReportMessage)
    return parsed


def error_of(text: str) -> MessageError:
    with pytest.raises(MessageError) as caught:
        parse(text)
    for value in PHI:
        assert value not in caught.value.reason
    return caught.value


def test_an_orm_for_a_stat_emergency_head_ct_reads_every_field() -> None:
    parsed = order(samples.orm())
    assert parsed.header.control_id == "MSG00001"
    assert (parsed.header.message_type, parsed.header.trigger_event) == ("ORM", "O01")
    assert parsed.header.sending_application == "RIS"
    assert parsed.header.sending_facility == "GENHOSP"
    assert parsed.order_control == "NW"
    assert parsed.accession_number == "ACC3003"  # OBR-18
    assert parsed.study_instance_uid == ""
    assert parsed.patient.patient_id == "MRN12345"
    assert parsed.patient.issuer_of_patient_id == "GENHOSP"
    # XPN family^given^middle^suffix^prefix becomes DICOM's ...^prefix^suffix.
    assert parsed.patient.name == "DOE^JANE^Q^DR^JR"
    assert parsed.patient.birth_date == date(1970, 3, 15)
    assert parsed.patient.sex == "F"
    assert parsed.patient_class is PatientClass.EMERGENCY
    assert parsed.assigned_location == "ED^BAY3^B"
    assert parsed.priority is OrderPriority.STAT
    assert (parsed.procedure_code, parsed.procedure_text) == (
        "CTHEAD",
        "CT head without contrast",
    )
    assert parsed.reason_for_study == "Fall from standing, on anticoagulants; Headache"
    assert parsed.ordering_provider == "DR GREGORY HOUSE"
    assert parsed.callback_number == "(217)555-0199"
    assert parsed.cancelled is False
    assert parsed.cancel_reason == ""


def test_an_omi_takes_accession_and_study_uid_from_ipc_and_priority_from_tq1() -> None:
    parsed = order(samples.omi())
    assert (parsed.header.message_type, parsed.header.trigger_event) == ("OMI", "O23")
    assert parsed.accession_number == "ACC7007"
    assert parsed.study_instance_uid == "1.2.840.113619.2.55.3.7007"
    assert parsed.priority is OrderPriority.URGENT  # TQ1-9 "A"
    assert parsed.patient_class is PatientClass.INPATIENT
    assert parsed.assigned_location == "W4^412^1"
    assert parsed.ordering_provider == "ROBERT CHASE"


def _obr(accession: str = "", priority: str = "", extra: str = "") -> str:
    fields = [""] * 32
    fields[1], fields[4] = "1", "XRCHEST^XR chest^L"
    fields[18] = accession
    fields[27] = f"^^^^^{priority}" if priority else ""
    return "OBR|" + "|".join(fields[1:]) + extra


@pytest.mark.parametrize(
    ("obr_accession", "orc_filler", "ipc", "expected"),
    [
        ("ACC-OBR18", "FIL-ORC3", None, "ACC-OBR18"),
        ("", "FIL-ORC3", None, "FIL-ORC3"),
        ("ACC-OBR18", "FIL-ORC3", "IPC|ACC-IPC1|REQ|1.2.3|SPS|CR", "ACC-IPC1"),
    ],
    ids=["obr-18", "orc-3 when obr-18 is empty", "ipc-1 first"],
)
def test_the_accession_number_is_the_first_of_ipc1_obr18_orc3(
    obr_accession: str, orc_filler: str, ipc: str | None, expected: str
) -> None:
    text = samples.er7(
        samples.msh("ORM^O01"),
        samples.PID,
        "PV1|1|O",
        f"ORC|NW|PLC1|{orc_filler}",
        _obr(obr_accession),
        *([ipc] if ipc else []),
    )
    assert order(text).accession_number == expected


def test_a_zds_segment_gives_the_study_instance_uid() -> None:
    text = samples.orm(extra=["ZDS|1.2.826.0.1.3680043.9.7007^RIS^Application^DICOM"])
    assert order(text).study_instance_uid == "1.2.826.0.1.3680043.9.7007"


@pytest.mark.parametrize(
    ("orc_timing", "tq1", "obr_priority", "expected"),
    [
        ("^^^^^S", None, "", OrderPriority.STAT),  # ORC-7.6
        ("", "TQ1|1||||||||S", "", OrderPriority.STAT),  # TQ1-9
        ("", None, "A", OrderPriority.URGENT),  # OBR-27.6
        ("^^^^^R", "TQ1|1||||||||A", "S", OrderPriority.URGENT),  # TQ1 wins
        ("^^^^^R", None, "S", OrderPriority.ROUTINE),  # ORC-7 before OBR-27
        ("", None, "", None),  # nothing said: the receiver keeps its default
    ],
    ids=["orc-7", "tq1-9", "obr-27", "tq1 first", "orc-7 second", "none"],
)
def test_the_priority_is_the_first_of_tq1_orc7_obr27(
    orc_timing: str, tq1: str | None, obr_priority: str, expected: OrderPriority | None
) -> None:
    text = samples.er7(
        samples.msh("ORM^O01"),
        samples.PID,
        "PV1|1|O",
        f"ORC|NW|PLC1|FIL1||||{orc_timing}",
        *([tq1] if tq1 else []),
        _obr("ACC1", obr_priority),
    )
    assert order(text).priority is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("S", OrderPriority.STAT),
        ("stat", OrderPriority.STAT),
        ("A", OrderPriority.URGENT),
        ("ASAP", OrderPriority.URGENT),
        ("P", OrderPriority.URGENT),
        ("T", OrderPriority.URGENT),
        ("TS", OrderPriority.URGENT),
        ("R", OrderPriority.ROUTINE),
        ("Routine", OrderPriority.ROUTINE),
        ("C", OrderPriority.ROUTINE),
        ("PRN", OrderPriority.ROUTINE),
        ("X", None),
        ("", None),
    ],
)
def test_priority_codes_and_their_variants(
    code: str, expected: OrderPriority | None
) -> None:
    assert known_order_priority(code) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("E", PatientClass.EMERGENCY),
        ("I", PatientClass.INPATIENT),
        ("B", PatientClass.INPATIENT),
        ("O", PatientClass.OUTPATIENT),
        ("P", PatientClass.OUTPATIENT),
        ("R", PatientClass.OUTPATIENT),
        ("U", PatientClass.UNKNOWN),
        ("e", PatientClass.EMERGENCY),
        ("Z", None),
        ("", None),
    ],
)
def test_patient_classes_of_pv1_2(code: str, expected: PatientClass | None) -> None:
    assert known_patient_class(code) is expected


@pytest.mark.parametrize("control", ["CA", "DC", "OC"])
def test_a_cancelling_order_control_marks_the_order_cancelled_with_its_reason(
    control: str,
) -> None:
    orc_extra = "||^Patient left the department"  # ORC-15 empty, ORC-16 text
    parsed = order(samples.orm(order_control=control, orc_extra=orc_extra))
    assert parsed.cancelled is True
    assert parsed.order_control == control
    assert parsed.cancel_reason == "Patient left the department"


def test_a_status_change_is_not_a_cancellation() -> None:
    parsed = order(samples.orm(order_control="SC", orc_extra="||^ignored"))
    assert parsed.cancelled is False
    assert parsed.cancel_reason == ""


def test_a_25_style_callback_number_is_assembled_from_its_components() -> None:
    text = samples.er7(
        samples.msh("ORM^O01", version="2.5"),
        samples.PID,
        "PV1|1|E",
        "ORC|NW|PLC1|FIL1|||||||||||^WPN^PH^^1^217^5550199^42",
        _obr("ACC1"),
    )
    assert order(text).callback_number == "+1 (217) 5550199 ext. 42"


def test_the_obr_provider_and_number_stand_in_for_empty_orc_ones() -> None:
    fields = _obr("ACC1").split("|")
    fields[16], fields[17] = "77^CAMERON^ALLISON", "555-0142"
    text = samples.er7(
        samples.msh("ORM^O01"), samples.PID, "ORC|NW|P|F", "|".join(fields)
    )
    parsed = order(text)
    assert parsed.ordering_provider == "ALLISON CAMERON"
    assert parsed.callback_number == "555-0142"


def test_escaped_separators_in_a_reason_are_read_as_text() -> None:
    fields = _obr("ACC1").split("|")
    fields[31] = "^Trauma \\T\\ fall \\F\\ query bleed"
    text = samples.er7(samples.msh("ORM^O01"), samples.PID, "ORC|NW", "|".join(fields))
    assert order(text).reason_for_study == "Trauma & fall | query bleed"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (samples.orm(order_control=""), "ORC-1"),
        (samples.orm(pid="PID|1||^^^GENHOSP||DOE^JANE||19700315|F"), "PID-3"),
        (samples.orm(pid="PV1|1|E"), "PID segment"),
        (
            samples.er7(samples.msh("ORM^O01"), samples.PID, "ORC|NW", _obr("")),
            "accession number",
        ),
    ],
    ids=["order control", "patient id", "no pid", "accession"],
)
def test_a_missing_required_field_is_named_and_its_values_are_not(
    text: str, field: str
) -> None:
    assert field in error_of(text).reason


def test_a_malformed_birth_date_is_an_error_that_does_not_quote_it() -> None:
    pid = samples.PID.replace("19700315", "19701399")
    error = error_of(samples.orm(pid=pid))
    assert "PID-7" in error.reason
    assert "19701399" not in error.reason
    assert error.code == ERR_DATA_TYPE


def test_a_birth_year_alone_gives_no_birth_date() -> None:
    parsed = order(samples.orm(pid=samples.PID.replace("19700315", "1970")))
    assert parsed.patient.birth_date is None


def test_two_orders_in_one_message_are_refused_rather_than_half_read() -> None:
    text = samples.orm(extra=["ORC|NW|PLC2|FIL3", _obr("ACC2")])
    assert "more than one order" in error_of(text).reason


def test_an_oru_final_report_reads_status_time_text_and_radiologist() -> None:
    parsed = report(samples.oru())
    assert parsed.accession_number == "ACC3003"
    assert parsed.status is ReportStatus.FINAL
    # OBR-22 with its offset, kept as an aware time.
    assert parsed.observed_at == datetime(
        2026, 12, 4, 11, 30, tzinfo=timezone(timedelta(hours=-5))
    )
    assert parsed.text == (
        "FINDINGS: No acute intracranial hemorrhage.\n"
        "IMPRESSION: Negative for bleed.\n"
        "Small old lacunar infarct."
    )  # the NM dose observation is not report text
    assert parsed.radiologist == "DR RITA M RAD"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("P", ReportStatus.PRELIMINARY),
        ("F", ReportStatus.FINAL),
        ("C", ReportStatus.CORRECTED),
    ],
)
def test_obr_25_sets_the_report_status(status: str, expected: ReportStatus) -> None:
    assert report(samples.oru(status=status)).status is expected


def test_an_unknown_report_status_is_an_error() -> None:
    assert "OBR-25" in error_of(samples.oru(status="X")).reason


def test_without_obr_22_the_first_obx_14_is_the_time_in_the_site_zone() -> None:
    text = samples.oru().replace("20261204113000-0500", "")
    assert report(text).observed_at == datetime(2026, 12, 4, 11, 29, tzinfo=PARIS)


def test_a_report_without_accession_is_an_error() -> None:
    text = samples.er7(
        samples.msh("ORU^R01"), samples.PID, "OBR|1||||||||||||||||||||||||F"
    )
    assert "accession" in error_of(text).reason


def test_an_mdm_t02_reads_txa_status_accession_and_formatted_text() -> None:
    parsed = report(samples.mdm())
    assert parsed.accession_number == "ACC4004"  # TXA-15
    assert parsed.status is ReportStatus.FINAL  # TXA-17 LA
    assert parsed.text == "Chest: clear lungs.\nNo effusion."  # FT's \.br\
    assert parsed.radiologist == "DR RITA RAD"  # TXA-22
    assert parsed.observed_at == datetime(2026, 12, 4, 12, 0, tzinfo=PARIS)  # TXA-4


@pytest.mark.parametrize(
    ("txa_status", "expected"),
    [("PA", ReportStatus.PRELIMINARY), ("AU", ReportStatus.FINAL)],
)
def test_txa_17_sets_an_mdm_report_status(
    txa_status: str, expected: ReportStatus
) -> None:
    assert report(samples.mdm(txa_status=txa_status)).status is expected


def test_an_mdm_still_in_dictation_is_an_error() -> None:
    assert "TXA-17" in error_of(samples.mdm(txa_status="DI")).reason


def test_an_a08_updates_demographics() -> None:
    parsed = parse(samples.adt_a08())
    assert isinstance(parsed, PatientUpdate)
    assert parsed.patient.patient_id == "MRN12345"
    assert parsed.patient.name == "DOE^JANE^QUINN"
    assert parsed.patient.birth_date == date(1970, 3, 16)


def test_an_a31_is_a_patient_update_too() -> None:
    text = samples.adt_a08().replace("ADT^A08^ADT_A01", "ADT^A31^ADT_A05")
    assert isinstance(parse(text), PatientUpdate)


def test_an_a40_names_the_surviving_and_the_merged_identifiers() -> None:
    parsed = parse(samples.adt_a40())
    assert isinstance(parsed, PatientMerge)
    assert (parsed.surviving_patient_id, parsed.surviving_issuer) == (
        "MRN12345",
        "GENHOSP",
    )
    assert (parsed.merged_patient_id, parsed.merged_issuer) == ("MRN99999", "GENHOSP")


def test_an_a40_without_mrg_1_is_an_error() -> None:
    assert "MRG-1" in error_of(samples.adt_a40(mrg="MRG|^^^GENHOSP")).reason


@pytest.mark.parametrize(
    ("message_type", "code"),
    [
        ("ADT^A01", ERR_UNSUPPORTED_EVENT_CODE),
        ("SIU^S12", ERR_UNSUPPORTED_MESSAGE_TYPE),
    ],
)
def test_unsupported_types_and_triggers_say_so(message_type: str, code: int) -> None:
    text = samples.er7(samples.msh(message_type), samples.PID)
    with pytest.raises(UnsupportedMessage) as caught:
        parse(text)
    assert caught.value.code == code
    assert message_type in caught.value.reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello, this is not HL7", "no MSH"),
        ("", "no MSH"),
        ("PID|1||MRN12345\rMSH|^~\\&|X", "no MSH"),
        ("BHS|^~\\&|RIS\r" + samples.orm() + "BTS|1", "batches"),
        ("FHS|^~\\&|RIS\r" + samples.orm(), "batches"),
        (samples.orm() + samples.oru(), "more than one message"),
    ],
)
def test_what_is_not_one_message_is_refused_without_quoting_it(
    text: str, reason: str
) -> None:
    with pytest.raises(MessageError) as caught:
        parse_er7(text)
    assert reason in caught.value.reason
    for value in PHI:
        assert value not in caught.value.reason


def test_msh_without_a_control_id_is_an_error() -> None:
    text = samples.orm().replace("|MSG00001|", "||")
    assert "MSH-10" in error_of(text).reason


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20261204", datetime(2026, 12, 4, tzinfo=PARIS)),
        ("202612041015", datetime(2026, 12, 4, 10, 15, tzinfo=PARIS)),
        ("20261204101530.25", datetime(2026, 12, 4, 10, 15, 30, 250000, tzinfo=PARIS)),
        ("20261204101530+0000", datetime(2026, 12, 4, 10, 15, 30, tzinfo=UTC)),
        (
            "20261204101530-0330",
            datetime(2026, 12, 4, 10, 15, 30, tzinfo=timezone(-timedelta(hours=3.5))),
        ),
        ("20261204101530^S", datetime(2026, 12, 4, 10, 15, 30, tzinfo=PARIS)),
        ("", None),
        ('""', None),
    ],
)
def test_timestamps_keep_their_precision_and_offset(
    value: str, expected: datetime | None
) -> None:
    parsed = parse_timestamp(value, PARIS, "OBR-22")
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None


def test_a_timestamp_without_an_offset_is_in_the_given_zone() -> None:
    # 10:15 in Paris in December is 09:15 UTC.
    parsed = parse_timestamp("202612041015", PARIS, "OBX-14")
    assert parsed is not None
    assert parsed.astimezone(UTC) == datetime(2026, 12, 4, 9, 15, tzinfo=UTC)


@pytest.mark.parametrize("value", ["2026-12-04", "12", "20261340"])
def test_a_malformed_timestamp_names_the_field(value: str) -> None:
    with pytest.raises(MessageError) as caught:
        parse_timestamp(value, PARIS, "OBR-22")
    assert "OBR-22" in caught.value.reason
    assert value not in caught.value.reason


def test_the_library_logs_no_field_it_cannot_unescape(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # \\Cxxyy\\ (a character set switch) makes python-hl7 log the whole field.
    pid = samples.PID.replace("DOE^JANE", "DOE\\C2842\\^JANE")
    # Another logging set-up after the import (uvicorn's, in serve) re-enables
    # every logger it does not name: the silencing must outlive that.
    # (Django's own configuration again, so that later tests log as before.)
    logging.config.dictConfig(settings.LOGGING)
    with caplog.at_level("DEBUG"):
        parsed = order(samples.orm(pid=pid))
    assert parsed.patient.name.startswith("DOE")
    assert "DOE" not in caplog.text
