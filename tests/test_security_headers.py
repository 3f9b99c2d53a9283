"""Login throttling with its audit trail, the Content-Security-Policy, and
``Cache-Control: no-store`` on everything that may carry PHI."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractBaseUser, User
from django.test import Client
from rest_framework.authtoken.models import Token

from tests.conftest import TEST_PASSWORD
from tests.factories import StudyFactory
from triage import services
from triage.models import AuditEvent
from triage.roles import Role
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _login(client: Client, username: str, password: str) -> int:
    response = client.post(
        "/accounts/login/", {"username": username, "password": password}
    )
    return response.status_code


def test_repeated_wrong_passwords_lock_the_account_out_and_are_audited(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = make_user(Role.RADIOLOGIST, "reader1")
    client = Client()
    for _ in range(30):
        _login(client, "reader1", "wrong-password")
    # The right password no longer gets in from here.
    assert _login(client, "reader1", TEST_PASSWORD) == 429
    assert "_auth_user_id" not in client.session
    failures = AuditEvent.objects.filter(action="login_failed")
    assert failures.count() >= 5
    first = failures.order_by("pk").first()
    assert first is not None
    assert first.object_id == str(user.pk)
    assert first.remote_addr == "127.0.0.1"
    assert first.detail == {"username": "reader1"}
    assert AuditEvent.objects.filter(
        action="login_locked_out", object_id=str(user.pk)
    ).exists()
    # Nothing of the password is kept.
    for event in AuditEvent.objects.all():
        assert "wrong-password" not in str(event.detail)


def test_a_few_typos_then_the_right_password_get_in(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    make_user(Role.RADIOLOGIST, "reader2")
    client = Client()
    for _ in range(3):
        assert _login(client, "reader2", "typo") == 200
    assert _login(client, "reader2", TEST_PASSWORD) == 302
    assert AuditEvent.objects.filter(action="login").count() == 1


def test_a_locked_out_user_is_not_locked_out_elsewhere(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    make_user(Role.RADIOLOGIST, "reader3")
    attacker = Client(REMOTE_ADDR="10.0.0.66")
    for _ in range(10):
        _login(attacker, "reader3", "guess")
    assert _login(attacker, "reader3", TEST_PASSWORD) == 429
    workstation = Client(REMOTE_ADDR="10.0.0.7")
    assert _login(workstation, "reader3", TEST_PASSWORD) == 302


def test_admin_login_is_throttled_too(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    make_user(Role.ADMINISTRATOR, "admin1")
    client = Client()
    for _ in range(10):
        client.post("/admin/login/", {"username": "admin1", "password": "guess"})
    response = client.post(
        "/admin/login/", {"username": "admin1", "password": TEST_PASSWORD}
    )
    assert response.status_code == 429


@pytest.mark.parametrize(
    ("role", "url"),
    [
        (None, "/accounts/login/"),
        (Role.RADIOLOGIST, "/worklist/"),
        (Role.CHARGE_TECHNOLOGIST, "/alerts/"),
        (Role.DEPARTMENT_HEAD, "/reports/"),
        (Role.DEPARTMENT_HEAD, "/reports/ai/"),
        (Role.ADMINISTRATOR, "/admin/"),
    ],
)
def test_pages_have_a_strict_csp_and_no_inline_script(
    client: Client,
    make_user: Callable[..., AbstractBaseUser],
    role: Role | None,
    url: str,
) -> None:
    if role is not None:
        user = make_user(role)
        assert isinstance(user, User)
        client.force_login(user)
    StudyFactory.create(reading_status=ReadingStatus.READY)
    response = client.get(url)
    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    directives = dict([*part.split(" ", 1), ""][:2] for part in policy.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    html = response.content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, tag
    for body in re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S):
        assert not body.strip(), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_no_template_holds_inline_script_or_handlers() -> None:
    for path in TEMPLATES.rglob("*.html"):
        if path.name == "validation_report.html":
            continue  # a file written to disk, never served
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, (path, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), path
        assert "javascript:" not in text, path


@pytest.mark.parametrize(
    ("role", "url"),
    [
        (Role.RADIOLOGIST, "/worklist/"),
        (Role.RADIOLOGIST, "/worklist/rows/"),
        (Role.RADIOLOGIST, "/api/studies/"),
        (Role.RADIOLOGIST, "/api/studies/{pk}/"),
        (Role.RADIOLOGIST, "/dicomweb/studies"),
        (Role.CHARGE_TECHNOLOGIST, "/alerts/"),
        (Role.DEPARTMENT_HEAD, "/reports/studies/{pk}/"),
        (Role.ADMINISTRATOR, "/admin/triage/study/"),
    ],
)
def test_phi_answers_are_never_stored_by_a_cache(
    client: Client,
    make_user: Callable[..., AbstractBaseUser],
    role: Role,
    url: str,
) -> None:
    user = make_user(role)
    assert isinstance(user, User)
    client.force_login(user)
    made = StudyFactory.create(reading_status=ReadingStatus.READY)
    response = client.get(url.format(pk=made.pk))
    assert response.status_code == 200, url
    assert response["Cache-Control"] == "no-store"


def test_token_answers_and_refusals_are_not_cached_either(db: None) -> None:
    services.set_integration_user("pacs")
    token = Token.objects.get(user__username="pacs")
    client = Client(headers={"Authorization": f"Token {token.key}"})
    answer = client.get("/dicomweb/studies?PatientID=P1")
    assert answer.status_code == 200
    assert answer["Cache-Control"] == "no-store"
    refused = Client().get("/dicomweb/studies?PatientID=P1")
    assert refused.status_code == 401
    assert refused["Cache-Control"] == "no-store"


def test_static_assets_keep_their_cache_lifetime(client: Client) -> None:
    response = client.get("/static/radtriage/site.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
