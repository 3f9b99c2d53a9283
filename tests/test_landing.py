"""Each role lands on its own page after login, and only sees what it may."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client

from tests.conftest import TEST_PASSWORD
from triage.roles import Role

pytestmark = pytest.mark.django_db

EXPECTED_LANDING = {
    Role.RADIOLOGIST: ("/worklist/", "radiologist-worklist"),
    Role.CHARGE_TECHNOLOGIST: ("/alerts/", "alert-board"),
    Role.DEPARTMENT_HEAD: ("/reports/", "reports"),
    Role.ADMINISTRATOR: ("/admin/", "Site administration"),
}


@pytest.mark.parametrize("role", list(Role))
def test_each_role_logs_in_and_lands_on_its_own_page(
    client: Client, make_user: Callable[..., AbstractBaseUser], role: Role
) -> None:
    user = make_user(role)
    response = client.post(
        "/accounts/login/",
        {"username": user.get_username(), "password": TEST_PASSWORD},
    )
    assert response.status_code == 302
    landing = client.get(response["Location"])
    assert landing.status_code == 302
    url, marker = EXPECTED_LANDING[role]
    assert landing["Location"] == url
    page = client.get(url)
    assert page.status_code == 200
    assert marker in page.content.decode()


def test_anonymous_user_is_sent_to_login(client: Client) -> None:
    for url in ("/", "/worklist/", "/alerts/", "/reports/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/")
    # The API answers for itself rather than redirecting to a page.
    assert client.get("/api/schema/").status_code in (401, 403)


def test_wrong_password_is_refused(
    client: Client, make_user: Callable[..., AbstractBaseUser]
) -> None:
    make_user(Role.RADIOLOGIST)
    response = client.post(
        "/accounts/login/", {"username": "radiologist", "password": "wrong"}
    )
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.parametrize(
    ("role", "forbidden"),
    [
        (Role.RADIOLOGIST, "/reports/"),
        (Role.RADIOLOGIST, "/alerts/"),
        (Role.CHARGE_TECHNOLOGIST, "/worklist/"),
        (Role.CHARGE_TECHNOLOGIST, "/reports/"),
        (Role.DEPARTMENT_HEAD, "/worklist/"),
        (Role.ADMINISTRATOR, "/worklist/"),
    ],
)
def test_roles_only_reach_their_own_pages(
    login: Callable[..., Client], role: Role, forbidden: str
) -> None:
    assert login(role).get(forbidden).status_code == 403


def test_user_without_role_is_told_so(
    client: Client, django_user_model: type[AbstractBaseUser]
) -> None:
    user = django_user_model.objects.create_user(  # type: ignore[attr-defined]
        username="nobody", password=TEST_PASSWORD
    )
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 403
    assert "No role assigned" in response.content.decode()


def test_logout_needs_post_and_ends_the_session(
    login: Callable[..., Client],
) -> None:
    client = login(Role.RADIOLOGIST)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/worklist/").status_code == 302


def test_viewing_the_worklist_is_audited(login: Callable[..., Client]) -> None:
    from triage.models import AuditEvent

    login(Role.RADIOLOGIST).get("/worklist/")
    event = AuditEvent.objects.exclude(action="login").get()
    assert event.action == "view_worklist"
    assert event.user is not None
    assert event.user.get_username() == "radiologist"
