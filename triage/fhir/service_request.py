"""FHIR R4 ``ServiceRequest`` to :class:`triage.order_details.OrderDetails`.

No Django: validated with the ``fhir.resources`` models (R4B, the compatible
release of R4 the package ships), then mapped. What is read:

* ``identifier``: the accession number (type ACSN, HL7 table 0203), placer
  (PLAC) and filler (FILL) order numbers, the Study Instance UID (system
  ``urn:dicom:uid``, IHE's convention);
* ``subject``: a contained Patient (identifier, name, birthDate, gender) or a
  reference's identifier;
* ``encounter``: a contained Encounter's class (v3 ActCode: EMER, IMP, AMB...)
  for the patient class;
* ``priority`` (stat, asap, urgent, routine), ``code`` (the procedure),
  ``reasonCode`` (the reason for study, as text), ``requester`` (display, and
  a contained Practitioner's or PractitionerRole's phone as the call-back
  number), ``locationReference`` / ``locationCode`` (where the patient is),
  ``authoredOn``;
* ``status``: revoked or entered-in-error cancels the order (the first
  ``note`` as the reason).

Error messages name the element and never repeat a value (PHI).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pydantic
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.reference import Reference
from fhir.resources.R4B.servicerequest import ServiceRequest

from triage.order_details import (
    OrderDetails,
    PatientDetails,
    order_priority_from_code,
)
from triage.vocabulary import PatientClass

#: HL7 v2 table 0203 identifier types, as FHIR codes them.
IDENTIFIER_TYPES = "http://terminology.hl7.org/CodeSystem/v2-0203"
DICOM_UID_SYSTEM = "urn:dicom:uid"
#: ServiceRequest.status values that cancel the order.
CANCELLING_STATUSES = {"revoked": "revoked", "entered-in-error": "entered in error"}
STATUSES = frozenset(
    {"draft", "active", "on-hold", "completed", "unknown", *CANCELLING_STATUSES}
)
#: v3 ActCode encounter classes onto RadTriage's patient classes.
ENCOUNTER_CLASSES: dict[str, PatientClass] = {
    "EMER": PatientClass.EMERGENCY,
    "IMP": PatientClass.INPATIENT,
    "ACUTE": PatientClass.INPATIENT,
    "NONAC": PatientClass.INPATIENT,
    "SS": PatientClass.INPATIENT,
    "OBSENC": PatientClass.INPATIENT,
    "AMB": PatientClass.OUTPATIENT,
    "PRENC": PatientClass.OUTPATIENT,
    "HH": PatientClass.OUTPATIENT,
    "VR": PatientClass.OUTPATIENT,
    "FLD": PatientClass.OUTPATIENT,
}
_SEX = {"female": "F", "male": "M", "other": "O"}
_MAX_ISSUES = 20


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem with a resource: where (a FHIRPath-like expression), what."""

    expression: str
    diagnostics: str


class InvalidResource(Exception):
    """The body is not a valid ServiceRequest, or lacks what an order needs."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i.expression}: {i.diagnostics}" for i in issues))
        self.issues = issues


def _path(loc: tuple[int | str, ...]) -> str:
    text = "ServiceRequest"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _safe_message(error: Any) -> str:
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    # Messages rarely quote the value; when one does, it is cut out (PHI).
    if isinstance(value, str | int | float) and str(value) and str(value) in message:
        message = message.replace(str(value), "…")
    return message[:200]


def parse_service_request(data: Any) -> ServiceRequest:
    """Validate ``data`` (parsed JSON) as an R4 ServiceRequest.

    Raises:
        InvalidResource: not a ServiceRequest, or invalid; the issues name
            each element at fault.
    """
    if not isinstance(data, dict) or data.get("resourceType") != "ServiceRequest":
        raise InvalidResource(
            [Issue("resourceType", "expected a ServiceRequest resource")]
        )
    try:
        resource = ServiceRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        issues = [
            Issue(_path(tuple(error["loc"])), _safe_message(error))
            for error in exc.errors(include_url=False)[:_MAX_ISSUES]
        ]
        raise InvalidResource(issues) from exc
    if resource.status not in STATUSES:
        raise InvalidResource(
            [Issue("ServiceRequest.status", "not a ServiceRequest status code")]
        )
    return resource


def _has_type(identifier: Identifier, code: str) -> bool:
    concept = identifier.type
    return concept is not None and any(
        coding.code == code and coding.system in (None, IDENTIFIER_TYPES)
        for coding in concept.coding or []
    )


def _identifier(resource: ServiceRequest, code: str) -> str:
    for identifier in resource.identifier or []:
        if _has_type(identifier, code) and identifier.value:
            return str(identifier.value).strip()
    return ""


def _study_instance_uid(resource: ServiceRequest) -> str:
    for identifier in resource.identifier or []:
        if identifier.system == DICOM_UID_SYSTEM and identifier.value:
            return str(identifier.value).removeprefix("urn:oid:").strip()
    return ""


def _contained(resource: ServiceRequest, reference: Reference | None) -> Any:
    """The contained resource a ``#id`` reference points to, or None."""
    if reference is None or not reference.reference:
        return None
    target = str(reference.reference)
    if not target.startswith("#"):
        return None
    for item in resource.contained or []:
        if item.id == target[1:]:
            return item
    return None


def _issuer(identifier: Identifier) -> str:
    if identifier.assigner is not None and identifier.assigner.display:
        return str(identifier.assigner.display)[:64]
    return str(identifier.system or "").removeprefix("urn:oid:")[:64]


def _person_name(names: list[Any] | None) -> str:
    """The first HumanName in DICOM PN form: FAMILY^GIVEN^MIDDLE."""
    if not names:
        return ""
    name = names[0]
    given = [str(g) for g in name.given or []]
    parts = [str(name.family or ""), given[0] if given else "", " ".join(given[1:])]
    text = "^".join(parts).rstrip("^")
    return text or str(name.text or "")


def _display_name(names: list[Any] | None) -> str:
    """The first HumanName as people write it: "Ann Smith"."""
    if not names:
        return ""
    name = names[0]
    if name.text:
        return str(name.text)
    return " ".join(
        [*(str(g) for g in name.given or []), str(name.family or "")]
    ).strip()


def _patient(resource: ServiceRequest) -> PatientDetails:
    subject = resource.subject
    contained = _contained(resource, subject)
    identifiers: list[Identifier] = []
    name, birth, sex = "", None, ""
    if contained is not None and contained.get_resource_type() == "Patient":
        identifiers = list(contained.identifier or [])
        name = _person_name(contained.name)
        birth = contained.birthDate if isinstance(contained.birthDate, date) else None
        sex = _SEX.get(str(contained.gender or ""), "")
    if subject.identifier is not None:
        identifiers.insert(0, subject.identifier)
    usable = [i for i in identifiers if i.value and str(i.value).strip()]
    if not usable:
        raise InvalidResource(
            [
                Issue(
                    "ServiceRequest.subject",
                    "the patient needs an identifier (on the reference or a "
                    "contained Patient)",
                )
            ]
        )
    # The medical record number when typed so, else the first identifier.
    chosen = next((i for i in usable if _has_type(i, "MR")), usable[0])
    return PatientDetails(
        patient_id=str(chosen.value).strip()[:64],
        issuer_of_patient_id=_issuer(chosen),
        patient_name=name[:324],
        birth_date=birth,
        sex=sex,
    )


def _patient_class(resource: ServiceRequest) -> PatientClass:
    encounter = _contained(resource, resource.encounter)
    if encounter is None or encounter.get_resource_type() != "Encounter":
        return PatientClass.UNKNOWN
    coding = encounter.class_fhir
    return ENCOUNTER_CLASSES.get(str(coding.code or "").upper(), PatientClass.UNKNOWN)


def _concept_text(concept: CodeableConcept | None) -> str:
    if concept is None:
        return ""
    if concept.text:
        return str(concept.text)
    return next((str(c.display) for c in concept.coding or [] if c.display), "")


def _requester(resource: ServiceRequest) -> tuple[str, str]:
    """(who ordered, for display; their phone number)."""
    requester = resource.requester
    if requester is None:
        return "", ""
    display = str(requester.display or "")
    phone = ""
    contained = _contained(resource, requester)
    if contained is not None and contained.get_resource_type() in (
        "Practitioner",
        "PractitionerRole",
    ):
        if not display and contained.get_resource_type() == "Practitioner":
            display = _display_name(contained.name)
        phone = next(
            (
                str(t.value)
                for t in contained.telecom or []
                if t.system == "phone" and t.value
            ),
            "",
        )
    return display[:256], phone[:64]


def _location(resource: ServiceRequest) -> str:
    for reference in resource.locationReference or []:
        if reference.display:
            return str(reference.display)[:128]
    for concept in resource.locationCode or []:
        text = _concept_text(concept)
        if text:
            return text[:128]
    return ""


def order_details_of(resource: ServiceRequest) -> OrderDetails:
    """The order a validated ServiceRequest stands for.

    Raises:
        InvalidResource: it lacks an accession number or a patient identifier.
    """
    accession = _identifier(resource, "ACSN")
    if not accession:
        raise InvalidResource(
            [
                Issue(
                    "ServiceRequest.identifier",
                    "an identifier of type ACSN (the accession number) is required",
                )
            ]
        )
    if len(accession) > 64:
        raise InvalidResource(
            [Issue("ServiceRequest.identifier", "the accession number is too long")]
        )
    uid = _study_instance_uid(resource)
    provider, callback = _requester(resource)
    code = resource.code
    reasons = [_concept_text(c) for c in resource.reasonCode or []]
    status = str(resource.status)
    cancelled = status in CANCELLING_STATUSES
    note = next((str(n.text) for n in resource.note or [] if n.text), "")
    ordered_at = (
        resource.authoredOn if isinstance(resource.authoredOn, datetime) else None
    )
    if ordered_at is not None and ordered_at.tzinfo is None:
        ordered_at = None  # a FHIR dateTime without a zone is not an instant
    return OrderDetails(
        accession_number=accession,
        patient=_patient(resource),
        patient_class=_patient_class(resource),
        order_priority=order_priority_from_code(str(resource.priority or "")),
        study_instance_uid=uid[:64],
        placer_order_number=_identifier(resource, "PLAC")[:64],
        filler_order_number=_identifier(resource, "FILL")[:64],
        assigned_location=_location(resource),
        procedure_code=(
            str(code.coding[0].code or "")[:64] if code and code.coding else ""
        ),
        procedure_text=_concept_text(code)[:256],
        reason_for_study="; ".join(r for r in reasons if r)[:2000],
        ordering_provider=provider,
        callback_number=callback,
        ordered_at=ordered_at,
        cancelled=cancelled,
        cancel_reason=(note or CANCELLING_STATUSES.get(status, ""))[:256]
        if cancelled
        else "",
    )
