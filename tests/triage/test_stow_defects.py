"""STOW-RS: authorisation before content negotiation, a clean failure per
malformed part, and the inflated-size cap (issue 13, defects 1, 8, 9)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.middleware.csrf import get_token
from django.test import RequestFactory
from rest_framework.test import APIClient

from tests.fuzz.dicom import deflated_instance
from tests.triage.dicom_data import ct_study, encode
from tests.triage.test_dicomweb import (
    failures,
    multipart,
    stored_uids,
    stow,
    user_with_role,
)
from triage import services
from triage.ingest import part10
from triage.models import Instance
from triage.roles import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def integration() -> APIClient:
    token = services.set_integration_user("pacs")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def browser(user: User) -> APIClient:
    """A logged-in browser: session and CSRF cookies, as a page would leave."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = get_token(RequestFactory().get("/"))
    return client


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        'multipart/related; type="application/dicom"; boundary=x',
    ],
)
def test_stow_over_a_session_without_the_csrf_token_is_forbidden(
    content_type: str,
) -> None:
    client = browser(user_with_role(Role.RADIOLOGIST))
    response = client.post(
        "/dicomweb/studies", data=b"--x--\r\n", content_type=content_type
    )
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]


def test_stow_over_a_session_with_the_csrf_token_needs_the_permission() -> None:
    client = browser(user_with_role(Role.RADIOLOGIST))
    response = client.post(
        "/dicomweb/studies",
        data=b"a=b",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.status_code == 403
    assert "CSRF" not in response.json()["detail"]


def test_a_part_of_file_meta_only_fails_that_part(integration: APIClient) -> None:
    dataset = ct_study(slices=1).datasets[0]
    meta_only = part10.file_meta(
        sop_class_uid=dataset.SOPClassUID,
        sop_instance_uid=dataset.SOPInstanceUID,
        transfer_syntax_uid=dataset.file_meta.TransferSyntaxUID,
    )
    response = stow(integration, multipart(meta_only, encode(dataset)))
    assert response.status_code == 202
    assert failures(response) == [0xA900]
    assert stored_uids(response) == [dataset.SOPInstanceUID]


@pytest.mark.parametrize("body", [b"", b"DICM", b"\x00" * 128 + b"DICM"])
def test_an_empty_part_fails_that_part(integration: APIClient, body: bytes) -> None:
    response = stow(integration, multipart(body))
    assert response.status_code == 409
    assert len(failures(response)) == 1


def test_a_deflate_bomb_fails_by_its_inflated_size(
    integration: APIClient, settings: Any
) -> None:
    settings.RADTRIAGE_MAX_INSTANCE_BYTES = 4 * 1024 * 1024
    dataset = ct_study(slices=1).datasets[0]
    bomb = deflated_instance(dataset, pixel_bytes=64 * 1024 * 1024)
    assert len(bomb) < settings.RADTRIAGE_MAX_INSTANCE_BYTES
    response = stow(integration, multipart(bomb))
    assert response.status_code == 409
    assert failures(response) == [0xC001]
    assert not Instance.objects.exists()
