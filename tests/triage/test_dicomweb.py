"""STOW-RS and QIDO-RS through the API, as a DICOMweb client calls them."""

from __future__ import annotations

from datetime import date
from typing import Any

import pydicom
import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from rest_framework.test import APIClient

from tests.factories import PatientFactory, SeriesFactory, StudyFactory
from tests.triage.dicom_data import (
    PYDICOM_BROKEN,
    ct_study,
    encode,
    pydicom_file_name,
    pydicom_test_files,
)
from triage import services
from triage.ingest.core import store_instance
from triage.models import AuditEvent, Instance, Study
from triage.roles import Role

pytestmark = pytest.mark.django_db

BOUNDARY = "RadTriageTestBoundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
REFERENCED_SOP_INSTANCE_UID = "00081155"


def multipart(*instances: bytes, content_type: str = "application/dicom") -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode()
        + data
        + b"\r\n"
        for data in instances
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


@pytest.fixture
def integration() -> APIClient:
    """A client authenticated as an integration account, with its token."""
    token = services.set_integration_user("pacs")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def stow(client: APIClient, body: bytes, url: str = "/dicomweb/studies", **extra: Any):
    extra.setdefault("content_type", STOW_TYPE)
    return client.post(url, data=body, HTTP_ACCEPT="application/dicom+json", **extra)


def stored_uids(response: Any) -> list[str]:
    items = response.json().get(REFERENCED_SOP_SEQUENCE, {}).get("Value", [])
    return [item[REFERENCED_SOP_INSTANCE_UID]["Value"][0] for item in items]


def failures(response: Any) -> list[int]:
    items = response.json().get(FAILED_SOP_SEQUENCE, {}).get("Value", [])
    return [item[FAILURE_REASON]["Value"][0] for item in items]


def test_stow_stores_a_study_and_lists_each_instance(integration: APIClient) -> None:
    study = ct_study(slices=3)
    response = stow(integration, multipart(*(encode(ds) for ds in study.datasets)))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/dicom+json"
    assert stored_uids(response) == [ds.SOPInstanceUID for ds in study.datasets]
    assert FAILED_SOP_SEQUENCE not in response.json()
    assert Instance.objects.count() == 3
    audit = AuditEvent.objects.get(action="dicomweb.store")
    assert audit.detail == {
        "study_ids": [Study.objects.get().pk],
        "stored": 3,
        "failed": 0,
    }


def test_stow_to_a_study_url_refuses_instances_of_other_studies(
    integration: APIClient,
) -> None:
    ours, other = ct_study(1, slices=1), ct_study(2, slices=1)
    response = stow(
        integration,
        multipart(encode(ours.datasets[0]), encode(other.datasets[0])),
        url=f"/dicomweb/studies/{ours.study_instance_uid}",
    )
    assert response.status_code == 202
    assert stored_uids(response) == [ours.datasets[0].SOPInstanceUID]
    assert failures(response) == [0xA900]
    failed_item = response.json()[FAILED_SOP_SEQUENCE]["Value"][0]
    assert (
        failed_item[REFERENCED_SOP_INSTANCE_UID]["Value"][0]
        == other.datasets[0].SOPInstanceUID
    )
    assert list(Study.objects.values_list("study_instance_uid", flat=True)) == [
        ours.study_instance_uid
    ]


def test_stow_with_every_part_refused_is_a_conflict(integration: APIClient) -> None:
    response = stow(integration, multipart(b"not dicom", b"\x00" * 200))
    assert response.status_code == 409
    assert failures(response) == [0xC000, 0xC000]
    assert not Instance.objects.exists()


def test_stow_of_a_part_over_the_cap_fails_that_part(
    integration: APIClient, settings: Any
) -> None:
    small, large = ct_study(slices=1).datasets[0], ct_study(3, slices=1).datasets[0]
    settings.RADTRIAGE_MAX_INSTANCE_BYTES = len(encode(small)) + 10
    large.PixelData = large.PixelData * 2
    large.Rows = large.Rows * 2
    response = stow(integration, multipart(encode(small), encode(large)))
    assert response.status_code == 202
    assert failures(response) == [0xC001]


def test_stow_of_a_part_that_is_not_application_dicom_fails_that_part(
    integration: APIClient,
) -> None:
    data = encode(ct_study(slices=1).datasets[0])
    response = stow(integration, multipart(data, content_type="text/plain"))
    assert response.status_code == 409
    assert failures(response) == [0xC000]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/dicom",
        'multipart/related; type="application/dicom+xml"; boundary=x',
        "application/json",
    ],
)
def test_stow_of_another_media_type_is_415(
    integration: APIClient, content_type: str
) -> None:
    response = stow(integration, b"{}", content_type=content_type)
    assert response.status_code == 415


@pytest.mark.parametrize(
    "body",
    [b"--other\r\n\r\nx\r\n--other--\r\n", multipart(b"x")[:-30], b""],
    ids=["wrong boundary", "cut short", "empty"],
)
def test_stow_of_a_broken_multipart_body_is_400(
    integration: APIClient, body: bytes
) -> None:
    assert stow(integration, body).status_code == 400


def test_stow_to_a_malformed_study_url_is_400(integration: APIClient) -> None:
    response = stow(integration, multipart(b"x"), url="/dicomweb/studies/1.2.x")
    assert response.status_code == 400


def test_stow_needs_an_integration_account() -> None:
    body = multipart(encode(ct_study(slices=1).datasets[0]))
    assert stow(APIClient(), body).status_code == 401
    reader = APIClient()
    reader.force_authenticate(user_with_role(Role.RADIOLOGIST))
    assert stow(reader, body).status_code == 403
    assert not Instance.objects.exists()


def test_stow_with_a_session_needs_the_csrf_token() -> None:
    services.set_integration_user("gateway")
    user = User.objects.get(username="gateway")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    response = stow(client, multipart(encode(ct_study(slices=1).datasets[0])))
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_stow_stores_every_valid_pydicom_test_file_and_refuses_the_rest(
    integration: APIClient,
) -> None:
    files = pydicom_test_files()
    response = stow(integration, multipart(*(p.read_bytes() for p in files)))
    assert response.status_code == 202
    expected_failures = [
        PYDICOM_BROKEN[pydicom_file_name(p)]
        for p in files
        if pydicom_file_name(p) in PYDICOM_BROKEN
    ]
    assert failures(response) == expected_failures
    valid = [p for p in files if pydicom_file_name(p) not in PYDICOM_BROKEN]
    assert len(stored_uids(response)) == len(valid)
    uids = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in valid}
    assert set(Instance.objects.values_list("sop_instance_uid", flat=True)) == uids


# QIDO-RS


def user_with_role(role: Role) -> User:
    """A user holding ``role`` (no password: the tests log in directly)."""
    user = User.objects.create(username=role.value.replace(" ", "_"))
    user.groups.add(Group.objects.get(name=role.value))
    return user


@pytest.fixture
def reader() -> APIClient:
    client = APIClient()
    client.force_authenticate(user_with_role(Role.RADIOLOGIST))
    return client


def search(client: APIClient, **params: str) -> Any:
    return client.get("/dicomweb/studies", params, HTTP_ACCEPT="application/dicom+json")


def uids_of(response: Any) -> list[str]:
    return [item["0020000D"]["Value"][0] for item in response.json()]


def test_qido_finds_a_stored_study_in_the_dicom_json_model(reader: APIClient) -> None:
    study = ct_study(slices=2)
    for dataset in study.datasets:
        store_instance(encode(dataset), now=timezone.now())

    response = search(reader, PatientID=study.patient_id)

    assert response.status_code == 200
    [result] = response.json()
    assert result["0020000D"] == {"vr": "UI", "Value": [study.study_instance_uid]}
    assert result["00100020"] == {"vr": "LO", "Value": [study.patient_id]}
    assert result["00080050"]["Value"] == [study.accession_number]
    assert result["00080061"] == {"vr": "CS", "Value": ["CT"]}
    assert result["00201206"]["Value"] == [1]
    assert result["00201208"]["Value"] == [2]
    assert result["00100010"]["Value"][0]["Alphabetic"]
    # Readable by a DICOM toolkit as it is.
    dataset = pydicom.Dataset.from_json(result)
    assert dataset.StudyInstanceUID == study.study_instance_uid


@pytest.fixture
def three_studies() -> dict[str, Study]:
    alice = PatientFactory.create(patient_id="ALICE1")
    bob = PatientFactory.create(patient_id="BOB22")
    return {
        "ct": StudyFactory.create(
            patient=alice,
            accession_number="A100",
            modalities="CT",
            study_date=date(2026, 1, 10),
        ),
        "ct_sr": StudyFactory.create(
            patient=alice,
            accession_number="A200",
            modalities="CT\\SR",
            study_date=date(2026, 2, 10),
        ),
        "mr": StudyFactory.create(
            patient=bob,
            accession_number="B300",
            modalities="MR",
            study_date=date(2026, 3, 10),
        ),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["mr", "ct_sr", "ct"]),
        ({"PatientID": "ALICE1"}, ["ct_sr", "ct"]),
        ({"00100020": "BOB22"}, ["mr"]),
        ({"PatientID": "ALI*"}, ["ct_sr", "ct"]),
        ({"PatientID": "BOB2?"}, ["mr"]),
        ({"PatientID": "ALICE"}, []),
        ({"AccessionNumber": "A200"}, ["ct_sr"]),
        ({"StudyDate": "20260210"}, ["ct_sr"]),
        ({"StudyDate": "20260101-20260228"}, ["ct_sr", "ct"]),
        ({"StudyDate": "20260201-"}, ["mr", "ct_sr"]),
        ({"StudyDate": "-20260131"}, ["ct"]),
        ({"ModalitiesInStudy": "CT"}, ["ct_sr", "ct"]),
        ({"ModalitiesInStudy": "SR"}, ["ct_sr"]),
        ({"ModalitiesInStudy": "S"}, []),
        ({"PatientID": "ALICE1", "ModalitiesInStudy": "SR"}, ["ct_sr"]),
        ({"limit": "1", "offset": "1"}, ["ct_sr"]),
        ({"includefield": "all", "fuzzymatching": "false"}, ["mr", "ct_sr", "ct"]),
    ],
)
def test_qido_matches_by_patient_accession_date_and_modality(
    reader: APIClient,
    three_studies: dict[str, Study],
    params: dict[str, str],
    expected: list[str],
) -> None:
    response = search(reader, **params)
    assert response.status_code == 200
    assert uids_of(response) == [
        three_studies[name].study_instance_uid for name in expected
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"StudyDate": "2026-01-01"},
        {"StudyDate": "20261301"},
        {"StudyDate": "20260301-20260101"},
        {"ModalitiesInStudy": "CT\\MR"},
        {"PatientName": "DOE^JOHN"},
        {"limit": "-1"},
        {"StudyInstanceUID": "1.2.abc"},
    ],
)
def test_qido_refuses_what_it_cannot_match_with_400(
    reader: APIClient, params: dict[str, str]
) -> None:
    assert search(reader, **params).status_code == 400


def test_qido_is_audited_with_the_studies_it_returned(
    reader: APIClient, three_studies: dict[str, Study]
) -> None:
    search(reader, PatientID="ALICE1", StudyDate="20260101-")
    audit = AuditEvent.objects.get(action="dicomweb.search")
    assert audit.user is not None
    assert audit.user.username == "radiologist"
    assert audit.detail == {
        "matching_keys": ["PatientID", "StudyDate"],
        "study_ids": [three_studies["ct_sr"].pk, three_studies["ct"].pk],
    }
    # The searched values are PHI: they stay out of the audit row.
    assert "ALICE1" not in str(audit.detail)


def test_qido_needs_a_role_that_may_see_phi(three_studies: dict[str, Study]) -> None:
    assert search(APIClient()).status_code == 401
    head = APIClient()
    head.force_authenticate(user_with_role(Role.DEPARTMENT_HEAD))
    assert search(head).status_code == 403
    assert not AuditEvent.objects.filter(action="dicomweb.search").exists()


def test_qido_is_open_to_integration_accounts(
    integration: APIClient, three_studies: dict[str, Study]
) -> None:
    assert len(search(integration).json()) == 3


def test_qido_costs_a_fixed_number_of_queries(
    reader: APIClient,
    django_assert_max_num_queries: Any,
) -> None:
    for _ in range(20):
        SeriesFactory.create()
    with django_assert_max_num_queries(6):
        assert len(search(reader).json()) == 20
