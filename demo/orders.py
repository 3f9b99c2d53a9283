"""The demo's orders, sent as a RIS sends them: HL7 v2 ORM^O01 messages.

Each goes through the HL7 intake (stored as received, applied, acknowledged),
the path a site's interface engine feeds; some arrive before their study's
images and some after, so the demo shows both meetings. Every value is made up.
"""

from __future__ import annotations

from datetime import datetime

import hl7
from django.utils import timezone

from demo.synthetic import SyntheticStudy
from triage.hl7.services import receive_message
from triage.vocabulary import OrderPriority, PatientClass

#: The HL7 codes of the demo's classes (PV1-2) and priorities (ORC-7.6, OBR-27.6).
CLASS_CODES = {
    PatientClass.EMERGENCY: "E",
    PatientClass.INPATIENT: "I",
    PatientClass.OUTPATIENT: "O",
    PatientClass.UNKNOWN: "U",
}
PRIORITY_CODES = {
    OrderPriority.STAT: "S",
    OrderPriority.URGENT: "A",
    OrderPriority.ROUTINE: "R",
}
LOCATIONS = {
    PatientClass.EMERGENCY: "ED^RESUS^2",
    PatientClass.INPATIENT: "WARD4^412^1",
    PatientClass.OUTPATIENT: "CLINIC2",
    PatientClass.UNKNOWN: "",
}
REASONS = {
    "ct-head": "Sudden severe headache",
    "DX": "Fall, pain and swelling",
    "CR": "Trauma, rule out fracture",
}


class OrderRefused(RuntimeError):
    """The intake did not accept a demo order (AE/AR): a demo bug, said loudly."""


def order_message(
    study: SyntheticStudy,
    *,
    kind: str,
    patient_class: PatientClass,
    order_priority: OrderPriority,
    control_id: str,
    at: datetime,
) -> str:
    """An ORM^O01 (HL7 2.3) for the synthetic ``study``, CR-separated."""
    stamp = timezone.localtime(at).strftime("%Y%m%d%H%M%S")
    priority = PRIORITY_CODES[order_priority]
    procedure = (
        "CTHEAD^CT head without contrast^L"
        if kind == "ct-head"
        else (f"{kind}^{kind} radiograph^L")
    )
    segments = [
        f"MSH|^~\\&|DEMO-RIS|DEMOHOSP|RADTRIAGE|RADIOLOGY|{stamp}||ORM^O01|"
        f"{control_id}|P|2.3",
        f"PID|1||{study.patient_id}^^^DEMOHOSP^MR||DEMO^PATIENT",
        f"PV1|1|{CLASS_CODES[patient_class]}|{LOCATIONS[patient_class]}",
        f"ORC|NW|P{control_id}|F{control_id}||SC||^^^{stamp}^^{priority}||{stamp}|||"
        "1001^ORDERING^DEMO^^^DR||(555)010-2000^WPN^PH",
        f"OBR|1|P{control_id}|F{control_id}|{procedure}|||{stamp}||||||||^^^^|"
        f"1001^ORDERING^DEMO^^^DR|(555)010-2000|{study.accession_number}||||||"
        f"{study.modality}|||^^^{stamp}^^{priority}||||^{REASONS.get(kind, '')}",
    ]
    return "\r".join(segments) + "\r"


def send_order(message: str, *, now: datetime) -> None:
    """Deliver one order through the HL7 intake; raises unless it was applied."""
    receipt = receive_message(message, remote_host="demo-ris", now=now)
    code = str(hl7.parse(receipt.ack).segment("MSA")(1))
    if code != "AA":
        raise OrderRefused(f"the demo order was answered {code}")
