"""Realistic HL7 v2 ER7 messages (CR segment separators), built per test.

Each builder takes the segments that vary and fills the rest as the interface
engines of real sites do. Every patient here is made up.
"""

from __future__ import annotations

from collections.abc import Iterable


def er7(*segments: str) -> str:
    """Segments joined the way they travel: CR-separated, CR-terminated."""
    return "\r".join(segments) + "\r"


def msh(
    message_type: str,
    control_id: str = "MSG00001",
    *,
    version: str = "2.3",
    sending_application: str = "RIS",
    sending_facility: str = "GENHOSP",
    timestamp: str = "20261204101500",
) -> str:
    return (
        f"MSH|^~\\&|{sending_application}|{sending_facility}|RADTRIAGE|RADIOLOGY|"
        f"{timestamp}||{message_type}|{control_id}|P|{version}"
    )


PID = (
    "PID|1||MRN12345^^^GENHOSP^MR~998877^^^SSA^SS||DOE^JANE^Q^JR^DR||"
    "19700315|F|||12 MAIN ST^^SPRINGFIELD^IL^62701||(217)555-0100"
)
PV1_EMERGENCY = "PV1|1|E|ED^BAY3^B^GENHOSP||||1234^WELBY^MARCUS^^^DR"


def orm(
    *,
    control_id: str = "MSG00001",
    order_control: str = "NW",
    orc_extra: str = "",
    obr: str | None = None,
    pid: str = PID,
    pv1: str = PV1_EMERGENCY,
    extra: Iterable[str] = (),
    version: str = "2.3",
) -> str:
    """An ORM^O01 for a STAT head CT, accession in OBR-18 (the common place)."""
    orc = (
        f"ORC|{order_control}|PLC1001|FIL2002||SC||^^^20261204101000^^S||"
        "20261204101000|||5678^HOUSE^GREGORY^^^DR||(217)555-0199^WPN^PH" + orc_extra
    )
    obr = obr or (
        "OBR|1|PLC1001|FIL2002|CTHEAD^CT head without contrast^L|||"
        "20261204101000||||||||^^^^|5678^HOUSE^GREGORY^^^DR|(217)555-0199|"
        "ACC3003||||||CT|||^^^20261204101000^^S||||"
        "^Fall from standing, on anticoagulants~R51^Headache^I10"
    )
    return er7(msh("ORM^O01", control_id, version=version), pid, pv1, orc, obr, *extra)


def omi(*, control_id: str = "OMI00001", ipc: str | None = None) -> str:
    """An OMI^O23 (2.5.1): TQ1 priority, IPC accession and Study Instance UID."""
    return er7(
        msh("OMI^O23^OMI_O23", control_id, version="2.5.1"),
        PID,
        "PV1|1|I|W4^412^1",
        "ORC|NW|PLC7||||||||||7777^CHASE^ROBERT|||||||||||||||||||||",
        "TQ1|1||||||||A",
        "OBR|1|PLC7||MRBRAIN^MR brain^L|||||||||||||||||||||||||||^Seizure",
        ipc or "IPC|ACC7007|REQ7|1.2.840.113619.2.55.3.7007|SPS7|MR",
    )


def oru(
    *,
    control_id: str = "ORU00001",
    status: str = "F",
    obr_extra: str = "",
    obx: Iterable[str] | None = None,
) -> str:
    """An ORU^R01 final report for accession ACC3003, text in TX OBX lines."""
    obr = (
        "OBR|1|PLC1001|FIL2002|CTHEAD^CT head without contrast^L|||20261204101000|||"
        "||||||5678^HOUSE^GREGORY||ACC3003||||20261204113000-0500||CT|"
        f"{status}|||||||9012&RAD&RITA&M&&DR{obr_extra}"
    )
    obx = (
        list(obx)
        if obx is not None
        else [
            "OBX|1|TX|CTHEAD^IMPRESSION||FINDINGS: No acute intracranial hemorrhage."
            "||||||F|||20261204112900",
            "OBX|2|TX|CTHEAD^IMPRESSION||IMPRESSION: Negative for bleed.~"
            "Small old lacunar infarct.||||||F",
            "OBX|3|NM|DLP^Dose length product||950|mGy.cm|||||F",
        ]
    )
    return er7(msh("ORU^R01", control_id), PID, "ORC|RE|PLC1001|FIL2002", obr, *obx)


def mdm(*, control_id: str = "MDM00001", txa_status: str = "LA") -> str:
    """An MDM^T02 (2.5): the report document, its status in TXA-17."""
    fields = [""] * 23
    fields[1:6] = ["1", "RAD", "TX", "20261204120000", "9012^RAD^RITA^M^^DR"]
    fields[12] = "DOC55"  # unique document number
    fields[15] = "ACC4004"  # filler order number: the accession at this site
    fields[17] = txa_status
    fields[19] = "AV"
    fields[22] = "9012^RAD^RITA^^^DR"  # authentication person
    txa = "TXA|" + "|".join(fields[1:])
    return er7(
        msh("MDM^T02^MDM_T02", control_id, version="2.5"),
        "EVN|T02|20261204120000",
        PID,
        "PV1|1|O|CLINIC2",
        txa,
        "OBX|1|FT|REPORT||Chest: clear lungs.\\.br\\No effusion.||||||F",
    )


def adt_a08(*, control_id: str = "ADT00001") -> str:
    return er7(
        msh("ADT^A08^ADT_A01", control_id, version="2.4"),
        "EVN|A08|20261204090000",
        "PID|1||MRN12345^^^GENHOSP^MR||DOE^JANE^QUINN||19700316|F",
        "PV1|1|O",
    )


def adt_a40(
    *, control_id: str = "ADT00002", mrg: str = "MRG|MRN99999^^^GENHOSP^MR"
) -> str:
    return er7(
        msh("ADT^A40^ADT_A39", control_id, version="2.4"),
        "EVN|A40|20261204090000",
        "PID|1||MRN12345^^^GENHOSP^MR||DOE^JANE",
        mrg,
    )
