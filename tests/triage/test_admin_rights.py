"""The Django admin: account administration without self-elevation, and no PHI
for roles without ``view_phi``. Driven through the real admin with the test client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, Group, User
from django.test import Client
from django.utils import timezone

from tests.factories import StudyFactory
from triage.models import AuditEvent, Order
from triage.order_details import OrderDetails, PatientDetails
from triage.orders import receive_order
from triage.roles import Role
from triage.vocabulary import IntakeSource

pytestmark = pytest.mark.django_db


@pytest.fixture
def administrator(make_user: Callable[..., AbstractBaseUser]) -> User:
    user = make_user(Role.ADMINISTRATOR, "admin1")
    assert isinstance(user, User)
    return user


@pytest.fixture
def admin_client(administrator: User) -> Client:
    client = Client()
    client.force_login(administrator)
    return client


def _change_form(user: User, **overrides: Any) -> dict[str, Any]:
    """What the full change form posts for ``user``, with ``overrides``."""
    data: dict[str, Any] = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "groups": [g.pk for g in user.groups.all()],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_administrator_cannot_make_themselves_superuser(
    administrator: User, admin_client: Client
) -> None:
    url = f"/admin/auth/user/{administrator.pk}/change/"
    response = admin_client.post(
        url,
        _change_form(
            administrator,
            is_superuser="on",
            is_staff="on",
            user_permissions=[],
        ),
    )
    assert response.status_code in (302, 403)
    administrator.refresh_from_db()
    assert not administrator.is_superuser
    # Their own account is theirs to look at, not to change.
    page = admin_client.get(url)
    assert page.status_code == 200
    assert 'name="is_superuser"' not in page.content.decode()
    assert 'name="username"' not in page.content.decode()


def test_administrator_cannot_raise_a_reader(
    administrator: User,
    admin_client: Client,
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    reader = make_user(Role.RADIOLOGIST, "reader1")
    assert isinstance(reader, User)
    admin_group = Group.objects.get(name=Role.ADMINISTRATOR.value)
    url = f"/admin/auth/user/{reader.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="is_superuser"' not in body
    assert 'name="is_staff"' not in body
    assert 'name="user_permissions"' not in body
    response = admin_client.post(
        url, _change_form(reader, is_superuser="on", groups=[admin_group.pk])
    )
    # The administrator role is not on offer: the form refuses it.
    assert response.status_code == 200
    reader.refresh_from_db()
    assert not reader.is_superuser
    assert not reader.is_staff
    assert list(reader.groups.values_list("name", flat=True)) == ["radiologist"]


def test_administrator_manages_working_accounts(
    admin_client: Client, make_user: Callable[..., AbstractBaseUser]
) -> None:
    reader = make_user(Role.RADIOLOGIST, "reader2")
    assert isinstance(reader, User)
    tech = Group.objects.get(name=Role.CHARGE_TECHNOLOGIST.value)
    url = f"/admin/auth/user/{reader.pk}/change/"
    response = admin_client.post(
        url, _change_form(reader, is_active=None, groups=[tech.pk])
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    reader.refresh_from_db()
    assert not reader.is_active
    assert list(reader.groups.values_list("name", flat=True)) == ["charge technologist"]
    assert AuditEvent.objects.filter(action="change_account").exists()
    reset = admin_client.post(
        f"/admin/auth/user/{reader.pk}/password/",
        {
            "password1": "another-long-passphrase-9",
            "password2": "another-long-passphrase-9",
        },
    )
    assert reset.status_code == 302
    reader.refresh_from_db()
    assert reader.check_password("another-long-passphrase-9")
    created = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "newreader",
            "usable_password": "true",
            "password1": "a-fresh-long-passphrase-7",
            "password2": "a-fresh-long-passphrase-7",
        },
    )
    assert created.status_code == 302
    made = User.objects.get(username="newreader")
    assert not made.is_staff
    assert not made.is_superuser


def test_administrator_cannot_change_other_administrators_or_roles(
    admin_client: Client, make_user: Callable[..., AbstractBaseUser]
) -> None:
    other = make_user(Role.ADMINISTRATOR, "admin2")
    root = User.objects.create_superuser("root", password="r" * 24)
    for account in (other, root):
        url = f"/admin/auth/user/{account.pk}/change/"
        assert admin_client.get(url).status_code in (200, 403)
        response = admin_client.post(url, {"username": "renamed"})
        assert response.status_code == 403
        assert (
            admin_client.get(f"/admin/auth/user/{account.pk}/password/").status_code
            == 403
        )
    group = Group.objects.get(name=Role.RADIOLOGIST.value)
    response = admin_client.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "radiologist"}
    )
    assert response.status_code == 403


def test_superuser_may_grant_administrator_rights(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    root = User.objects.create_superuser("root", password="r" * 24)
    reader = make_user(Role.RADIOLOGIST, "reader3")
    assert isinstance(reader, User)
    client = Client()
    client.force_login(root)
    admin_group = Group.objects.get(name=Role.ADMINISTRATOR.value)
    response = client.post(
        f"/admin/auth/user/{reader.pk}/change/",
        _change_form(reader, is_staff="on", groups=[admin_group.pk]),
    )
    assert response.status_code == 302
    reader.refresh_from_db()
    assert reader.is_staff


def test_admin_shows_no_study_identifiers_without_view_phi(
    admin_client: Client,
) -> None:
    study = StudyFactory.create(
        accession_number="ACC-SECRET-1", study_instance_uid="1.2.826.0.1.99901"
    )
    series = study.series.first()
    for url in (
        "/admin/triage/study/",
        f"/admin/triage/study/{study.pk}/change/",
        "/admin/triage/series/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "ACC-SECRET-1" not in body, url
        assert "1.2.826.0.1.99901" not in body, url
    if series is not None:
        page = admin_client.get(f"/admin/triage/series/{series.pk}/change/")
        assert series.series_instance_uid not in page.content.decode()


def test_admin_lists_orders_read_only_and_without_phi(admin_client: Client) -> None:
    study = StudyFactory.create(accession_number="ACC-ORDER-1")
    receive_order(
        OrderDetails(
            "ACC-ORDER-1",
            PatientDetails("MRN-SECRET-1", patient_name="SECRET^NAME"),
            reason_for_study="secret reason",
            callback_number="+1 555 0199",
        ),
        source=IntakeSource.HL7,
        now=timezone.now(),
    )
    order = Order.objects.get()
    assert order.study_id == study.pk
    for url in ("/admin/triage/order/", f"/admin/triage/order/{order.pk}/change/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for phi in ("ACC-ORDER-1", "MRN-SECRET-1", "SECRET^NAME", "secret reason"):
            assert phi not in body, (url, phi)
        assert "+1 555 0199" not in body, url
    assert admin_client.get("/admin/triage/order/add/").status_code == 403
    deleted = admin_client.post(
        f"/admin/triage/order/{order.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403
    assert Order.objects.filter(pk=order.pk).exists()


def test_superuser_sees_study_identifiers() -> None:
    root = User.objects.create_superuser("root", password="r" * 24)
    client = Client()
    client.force_login(root)
    study = StudyFactory.create(accession_number="ACC-SEEN-1")
    page = client.get(f"/admin/triage/study/{study.pk}/change/")
    assert "ACC-SEEN-1" in page.content.decode()
