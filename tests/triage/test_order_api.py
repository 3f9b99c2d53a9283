"""POST /api/orders/: integration tokens, clear 400s, idempotent re-posts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, User
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.factories import StudyFactory, entry_of
from triage import services
from triage.models import AuditEvent, Order
from triage.roles import Role
from triage.vocabulary import OrderPriority, OrderStatus, PatientClass
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

URL = "/api/orders/"


def payload(**fields: Any) -> dict[str, Any]:
    return {
        "accession_number": "ACC-100",
        "patient": {
            "patient_id": "MRN-100",
            "issuer_of_patient_id": "HOSP",
            "patient_name": "DOE^JANE",
            "birth_date": "1960-02-03",
            "sex": "F",
        },
        "patient_class": "E",
        "order_priority": "STAT",
        "procedure_code": "CTHEAD",
        "procedure_text": "CT head without contrast",
        "reason_for_study": "sudden headache",
        "assigned_location": "ED^BAY3",
        "ordering_provider": "Dr A. Smith",
        "callback_number": "+1 555 0100",
        "ordered_at": "2026-12-04T08:55:00Z",
        **fields,
    }


def token_client(*, orders: bool = True, name: str = "ris") -> APIClient:
    token = services.set_integration_user(name, submit_orders=orders)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.fixture
def ris() -> APIClient:
    return token_client()


def test_an_order_posted_with_an_integration_token_is_created(ris: APIClient) -> None:
    response = ris.post(URL, payload(), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    order = Order.objects.get()
    assert body == {
        "id": order.pk,
        "status": "scheduled",
        "study_id": None,
        "changed": True,
    }
    assert (order.patient_class, order.order_priority) == (
        PatientClass.EMERGENCY,
        OrderPriority.STAT,
    )
    assert order.source == "api"
    assert order.patient_name == "DOE^JANE"
    assert order.reason_for_study == "sudden headache"


def test_posting_the_same_order_again_answers_200_and_changes_nothing(
    ris: APIClient,
) -> None:
    first = ris.post(URL, payload(), format="json").json()
    again = ris.post(URL, payload(), format="json")
    assert again.status_code == 200
    assert again.json() == {**first, "changed": False}
    assert Order.objects.count() == 1


def test_an_order_for_a_received_study_links_and_reprioritises_it(
    ris: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    study = StudyFactory.create(accession_number="ACC-100")
    before = entry_of(study).priority_score
    with django_capture_on_commit_callbacks(execute=True):
        response = ris.post(URL, payload(), format="json")
    assert response.json()["study_id"] == study.pk
    assert response.json()["status"] == OrderStatus.IN_PROGRESS
    assert entry_of(study).priority_score > before


def test_a_cancelled_order_takes_its_study_off_the_list(
    ris: APIClient, django_capture_on_commit_callbacks: Any
) -> None:
    study = StudyFactory.create(accession_number="ACC-100")
    with django_capture_on_commit_callbacks(execute=True):
        ris.post(URL, payload(), format="json")
        response = ris.post(
            URL,
            payload(cancelled=True, cancel_reason="ordered in error"),
            format="json",
        )
    assert response.json()["status"] == "cancelled"
    assert entry_of(study).reading_status == ReadingStatus.CANCELLED


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"accession_number": ""}, "accession_number"),
        ({"accession_number": "A" * 65}, "accession_number"),
        ({"patient": {"patient_name": "X"}}, "patient"),
        ({"patient_class": "spaceship"}, "patient_class"),
        ({"order_priority": "whenever"}, "order_priority"),
        ({"study_instance_uid": "not.a.uid!"}, "study_instance_uid"),
        ({"ordered_at": "yesterday"}, "ordered_at"),
        ({"priority": "stat"}, "priority"),  # unknown: misspelt, not lost
        ({"cancelled": "perhaps"}, "cancelled"),
    ],
)
def test_a_bad_payload_is_refused_with_the_field_named(
    ris: APIClient, change: dict[str, Any], field: str
) -> None:
    response = ris.post(URL, payload(**change), format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Order.objects.exists()


def test_a_missing_accession_is_named(ris: APIClient) -> None:
    body = payload()
    del body["accession_number"]
    response = ris.post(URL, body, format="json")
    assert response.status_code == 400
    assert "accession_number" in response.json()


def test_a_body_that_is_not_json_is_refused(ris: APIClient) -> None:
    response = ris.post(URL, "<xml/>", content_type="application/json")
    assert response.status_code == 400


def test_a_uid_contradicting_the_earlier_one_is_a_conflict_without_phi(
    ris: APIClient,
) -> None:
    ris.post(URL, payload(study_instance_uid="1.2.3.4"), format="json")
    response = ris.post(URL, payload(study_instance_uid="1.2.3.5"), format="json")
    assert response.status_code == 409
    text = response.content.decode()
    assert "Study Instance UID" in text
    for phi in ("ACC-100", "1.2.3.4", "1.2.3.5", "MRN-100", "DOE"):
        assert phi not in text


def test_an_anonymous_request_is_told_to_authenticate() -> None:
    response = APIClient().post(URL, payload(), format="json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Token")
    assert not Order.objects.exists()


def test_a_token_without_the_order_permission_is_forbidden() -> None:
    response = token_client(orders=False, name="pacs").post(
        URL, payload(), format="json"
    )
    assert response.status_code == 403


@pytest.mark.parametrize("role", list(Role))
def test_no_role_may_post_orders(
    role: Role, make_user: Callable[..., AbstractBaseUser]
) -> None:
    user = make_user(role)
    assert isinstance(user, User)
    client = APIClient()
    client.force_authenticate(user)
    assert client.post(URL, payload(), format="json").status_code == 403


def test_every_order_request_is_audited_without_phi(ris: APIClient) -> None:
    ris.post(URL, payload(), format="json")
    ris.post(URL, payload(), format="json")
    ris.post(URL, payload(accession_number=""), format="json")
    audits = list(AuditEvent.objects.filter(action="submit_order").order_by("pk"))
    assert [a.detail["outcome"] for a in audits] == ["created", "updated", "invalid"]
    assert all(a.user is not None and a.user.get_username() == "ris" for a in audits)
    order = Order.objects.get()
    assert audits[0].object_id == str(order.pk)
    for audit in audits:
        assert "MRN-100" not in str(audit.detail) and "ACC-100" not in str(audit.detail)


def test_the_command_makes_an_order_account(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("set_integration_user", "engine", "--orders")
    token = capsys.readouterr().out.strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post(URL, payload(), format="json").status_code == 201


def test_the_schema_documents_the_order_intake(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = make_user(Role.RADIOLOGIST)
    assert isinstance(user, User)
    client = APIClient()
    client.force_authenticate(user)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/orders/"]["post"]
    assert {"200", "201", "400", "409"} <= set(operation["responses"])
    assert "Order" in schema["components"]["schemas"]
