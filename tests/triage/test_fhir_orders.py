"""FHIR R4 ServiceRequest create and update: validated with fhir.resources,
mapped onto the one order service, errors as OperationOutcome."""

from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import StudyFactory, entry_of
from triage import services
from triage.fhir.service_request import (
    InvalidResource,
    order_details_of,
    parse_service_request,
)
from triage.models import AuditEvent, Order
from triage.vocabulary import OrderPriority, OrderStatus, PatientClass
from worklist.vocabulary import ReadingStatus

URL = "/fhir/ServiceRequest"
FHIR_JSON = "application/fhir+json"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def resource(**fields: Any) -> dict[str, Any]:
    """A STAT head CT for an ED patient, as an interface engine would post it."""
    body: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "stat",
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": "A-1"},
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "value": "P-1"},
            {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.10.99"},
        ],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "30799-1"}],
            "text": "CT head without contrast",
        },
        "subject": {"reference": "#pat"},
        "encounter": {"reference": "#enc"},
        "requester": {"reference": "#doc"},
        "reasonCode": [{"text": "sudden headache"}, {"text": "?bleed"}],
        "locationReference": [{"display": "ED bay 3"}],
        "authoredOn": "2026-12-04T08:55:00Z",
        "contained": [
            {
                "resourceType": "Patient",
                "id": "pat",
                "identifier": [
                    {
                        "type": {"coding": [{"system": V2_0203, "code": "MR"}]},
                        "system": "urn:oid:1.2.3.4",
                        "value": "MRN-200",
                    }
                ],
                "name": [{"family": "DOE", "given": ["JANE", "Q"]}],
                "birthDate": "1960-02-03",
                "gender": "female",
            },
            {
                "resourceType": "Encounter",
                "id": "enc",
                "status": "in-progress",
                "class": {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "EMER",
                },
            },
            {
                "resourceType": "Practitioner",
                "id": "doc",
                "name": [{"family": "Smith", "given": ["Ann"]}],
                "telecom": [{"system": "phone", "value": "+1 555 0100"}],
            },
        ],
    }
    body.update(fields)
    return body


@pytest.fixture
def engine(db: None) -> APIClient:
    token = services.set_integration_user("engine", submit_orders=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def post(client: APIClient, body: Any, url: str = URL, method: str = "post") -> Any:
    send = getattr(client, method)
    return send(url, json.dumps(body), content_type=FHIR_JSON)


def issues(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert response["Content-Type"].startswith(FHIR_JSON)
    return list(body["issue"])


# --- mapping, no database --------------------------------------------------------


def test_a_service_request_maps_onto_the_order_it_stands_for() -> None:
    details = order_details_of(parse_service_request(resource()))
    assert details.accession_number == "A-1"
    assert details.placer_order_number == "P-1"
    assert details.study_instance_uid == "1.2.826.0.1.3680043.10.99"
    assert (details.patient_class, details.order_priority) == (
        PatientClass.EMERGENCY,
        OrderPriority.STAT,
    )
    patient = details.patient
    assert (patient.patient_id, patient.issuer_of_patient_id) == ("MRN-200", "1.2.3.4")
    assert patient.patient_name == "DOE^JANE^Q"
    assert (patient.birth_date, patient.sex) == (date(1960, 2, 3), "F")
    assert (details.procedure_code, details.procedure_text) == (
        "30799-1",
        "CT head without contrast",
    )
    assert details.reason_for_study == "sudden headache; ?bleed"
    assert details.ordering_provider == "Ann Smith"
    assert details.callback_number == "+1 555 0100"
    assert details.assigned_location == "ED bay 3"
    assert details.ordered_at is not None and details.ordered_at.tzinfo is not None
    assert not details.cancelled


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ("stat", OrderPriority.STAT),
        ("asap", OrderPriority.URGENT),
        ("urgent", OrderPriority.URGENT),
        ("routine", OrderPriority.ROUTINE),
    ],
)
def test_fhir_priorities_map_onto_order_priorities(
    priority: str, expected: OrderPriority
) -> None:
    details = order_details_of(parse_service_request(resource(priority=priority)))
    assert details.order_priority is expected


@pytest.mark.parametrize("status", ["revoked", "entered-in-error"])
def test_a_revoked_request_is_a_cancelled_order(status: str) -> None:
    body = resource(status=status, note=[{"text": "patient left"}])
    details = order_details_of(parse_service_request(body))
    assert details.cancelled and details.cancel_reason == "patient left"


def test_a_subject_given_by_identifier_alone_is_enough() -> None:
    body = resource(
        subject={"identifier": {"system": "urn:oid:9.9", "value": "MRN-9"}},
        encounter=None,
    )
    del body["encounter"]
    details = order_details_of(parse_service_request(body))
    assert details.patient.patient_id == "MRN-9"
    assert details.patient_class is PatientClass.UNKNOWN


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"resourceType": "Patient"}, "resourceType"),
        (resource(status="bogus"), "ServiceRequest.status"),
        (resource(authoredOn="2026-13-45"), "ServiceRequest.authoredOn"),
        (resource(identifier="A-1"), "ServiceRequest.identifier"),
        (resource(unknownElement=1), "ServiceRequest.unknownElement"),
        (resource(identifier=[]), "ServiceRequest.identifier"),  # no ACSN
        (resource(subject={"reference": "Patient/1"}), "ServiceRequest.subject"),
    ],
)
def test_an_invalid_resource_names_the_element(body: Any, where: str) -> None:
    with pytest.raises(InvalidResource) as refused:
        order_details_of(parse_service_request(body))
    assert refused.value.issues[0].expression.startswith(where)


def test_a_missing_required_element_is_named() -> None:
    body = resource()
    del body["intent"]
    with pytest.raises(InvalidResource) as refused:
        parse_service_request(body)
    assert refused.value.issues[0].expression == "ServiceRequest.intent"


# --- over HTTP -------------------------------------------------------------------


@pytest.mark.django_db
def test_a_valid_service_request_creates_the_order(engine: APIClient) -> None:
    response = post(engine, resource())
    assert response.status_code == 201, response.content
    order = Order.objects.get()
    body = response.json()
    assert body["resourceType"] == "ServiceRequest"
    assert body["id"] == str(order.pk)
    assert response["Location"] == f"/fhir/ServiceRequest/{order.pk}"
    assert order.source == "fhir"
    assert (order.patient_class, order.order_priority) == ("emergency", "stat")
    assert order.callback_number == "+1 555 0100"
    again = post(engine, resource())
    assert again.status_code == 200
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_plain_json_is_accepted_too(engine: APIClient) -> None:
    response = engine.post(URL, resource(), format="json")
    assert response.status_code == 201


@pytest.mark.django_db
def test_an_invalid_resource_is_a_400_operation_outcome_without_phi(
    engine: APIClient,
) -> None:
    body = resource(authoredOn="MRN-200 was here")
    response = post(engine, body)
    assert response.status_code == 400
    found = issues(response)
    assert found[0]["severity"] == "error"
    assert found[0]["code"] == "invalid"
    assert found[0]["expression"] == ["ServiceRequest.authoredOn"]
    assert "MRN-200" not in response.content.decode()
    assert not Order.objects.exists()
    audit = AuditEvent.objects.get(action="submit_order")
    assert audit.detail == {"source": "fhir", "outcome": "invalid"}


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_an_operation_outcome(engine: APIClient) -> None:
    response = engine.post(URL, "{not json", content_type=FHIR_JSON)
    assert response.status_code == 400
    assert issues(response)[0]["code"] == "invalid"


@pytest.mark.django_db
def test_an_update_that_revokes_the_request_cancels_the_order(
    engine: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    study = StudyFactory.create(
        accession_number="A-1", study_instance_uid="1.2.826.0.1.3680043.10.99"
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = post(engine, resource())
    order_id = created.json()["id"]
    assert entry_of(study).reading_status != ReadingStatus.CANCELLED

    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            engine,
            resource(status="revoked", id=order_id),
            url=f"{URL}/{order_id}",
            method="put",
        )

    assert response.status_code == 200, response.content
    order = Order.objects.get()
    assert order.status == OrderStatus.CANCELLED
    assert order.cancel_reason == "revoked"
    assert entry_of(study).reading_status == ReadingStatus.CANCELLED


@pytest.mark.django_db
def test_an_update_of_an_unknown_request_is_not_found(engine: APIClient) -> None:
    response = post(engine, resource(), url=f"{URL}/999", method="put")
    assert response.status_code == 404
    assert issues(response)[0]["code"] == "not-found"
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_an_update_cannot_change_the_accession_or_the_id(engine: APIClient) -> None:
    order_id = post(engine, resource()).json()["id"]
    other = copy.deepcopy(resource())
    other["identifier"][0]["value"] = "A-2"
    changed = post(engine, other, url=f"{URL}/{order_id}", method="put")
    assert changed.status_code == 422
    assert issues(changed)[0]["code"] == "business-rule"
    wrong_id = post(engine, resource(id="12345"), url=f"{URL}/{order_id}", method="put")
    assert wrong_id.status_code == 400


@pytest.mark.django_db
def test_a_contradicting_uid_is_a_business_rule_outcome(engine: APIClient) -> None:
    post(engine, resource())
    body = copy.deepcopy(resource())
    body["identifier"][2]["value"] = "urn:oid:1.2.826.0.1.3680043.10.100"
    response = post(engine, body)
    assert response.status_code == 422
    assert "Study Instance UID" in issues(response)[0]["diagnostics"]
    assert "1.2.826" not in response.content.decode()


@pytest.mark.django_db
def test_fhir_requires_an_order_token() -> None:
    anonymous = post(APIClient(), resource())
    assert anonymous.status_code == 401
    assert issues(anonymous)[0]["code"] == "login"
    assert anonymous["WWW-Authenticate"].startswith("Token")
    token = services.set_integration_user("pacs")
    pacs = APIClient()
    pacs.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    forbidden = post(pacs, resource())
    assert forbidden.status_code == 403
    assert issues(forbidden)[0]["code"] == "forbidden"
    assert not Order.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "status"),
    [("/fhir/Patient", 404), (f"{URL}?format=bogus", 404)],
)
def test_unknown_fhir_urls_answer_an_operation_outcome(
    engine: APIClient, url: str, status: int
) -> None:
    response = post(engine, resource(), url=url)
    assert response.status_code == status
    assert issues(response)[0]["code"] == "not-found"
