"""The board: its websocket, its page, acknowledging from it, the worklist badge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.test import Client
from django.utils import timezone

from radtriage.asgi import application
from tests.worklist.alert_data import add_finding, scored_study
from triage.models import Study
from triage.roles import ROLE_PERMISSIONS, Role
from worklist.alerts import services
from worklist.alerts.models import Alert, AlertStatus
from worklist.routing import websocket_urlpatterns


@pytest.fixture
def _role_groups(transactional_db: None) -> None:
    """The role groups, gone after another transactional test's flush."""
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="triage", codename__in=codenames
            )
        )


def _communicator(user: AbstractBaseUser | None) -> WebsocketCommunicator:
    if user is None:
        return WebsocketCommunicator(
            application, "/ws/alerts/", headers=[(b"origin", b"http://localhost")]
        )
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), "/ws/alerts/"
    )
    communicator.scope["user"] = user  # type: ignore[typeddict-unknown-key]
    return communicator


def _raise(**finding: Any) -> Alert:
    study = scored_study(last_instance_received_at=timezone.now())
    add_finding(study, **finding)
    [alert] = services.raise_alerts(study.pk, now=timezone.now())
    return alert


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_role_groups")
async def test_anonymous_and_radiologists_are_refused(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    connected, _ = await _communicator(None).connect()
    assert not connected
    reader = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    connected, code = await _communicator(reader).connect()
    assert not connected
    assert code == 4403


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_role_groups")
async def test_board_gets_the_raised_alert_after_commit_and_confirms_receipt(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    tech = await database_sync_to_async(make_user)(Role.CHARGE_TECHNOLOGIST)
    communicator = _communicator(tech)
    connected, _ = await communicator.connect()
    assert connected
    alert = await asyncio.to_thread(_raise)
    message: dict[str, Any] = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "alerts.delta"
    assert (message["id"], message["study_id"]) == (alert.pk, alert.study_id)
    assert message["status"] == "open"
    assert set(message) == {
        "type",
        "seq",
        "epoch",
        "id",
        "study_id",
        "version",
        "status",
        "escalated",
    }
    study = await database_sync_to_async(Study.objects.select_related("patient").get)(
        pk=alert.study_id
    )
    text = json.dumps(message)
    for phi in (study.patient.patient_name, study.accession_number):
        assert phi not in text
    await communicator.send_json_to({"type": "alerts.received", "id": alert.pk})
    for _ in range(50):
        delivered = await database_sync_to_async(
            lambda: Alert.objects.get(pk=alert.pk).delivered_at
        )()
        if delivered is not None:
            break
        await asyncio.sleep(0.05)
    assert delivered is not None
    await communicator.disconnect()


@pytest.mark.django_db
def test_board_lists_open_alerts_with_figures(login: Callable[..., Client]) -> None:
    alert = _raise()
    client = login(Role.CHARGE_TECHNOLOGIST)
    page = client.get("/alerts/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'id="alert-{alert.pk}"' in html
    assert "ICH suspected" in html
    assert "alerts in 24 h" in html
    assert "Acknowledge" in html
    assert (
        client.get("/alerts/cards/?status=resolved")
        .content.decode()
        .count("alert-card")
        == 0
    )


@pytest.mark.django_db
def test_radiologists_cannot_see_the_board(login: Callable[..., Client]) -> None:
    assert login(Role.RADIOLOGIST).get("/alerts/").status_code == 403


@pytest.mark.django_db
def test_acknowledging_from_the_board_requires_csrf_and_shows_who(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    alert = _raise()
    tech = make_user(Role.CHARGE_TECHNOLOGIST, "tech1")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(tech)  # type: ignore[arg-type]
    url = f"/alerts/{alert.pk}/acknowledge/"
    assert strict.post(url, {"note": "x"}).status_code == 403
    client = Client()
    client.force_login(tech)  # type: ignore[arg-type]
    card = client.post(url, {"note": "called ED"}, headers={"HX-Request": "true"})
    assert card.status_code == 200
    assert "Acknowledged by" in card.content.decode()
    assert "tech1" in card.content.decode()
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledgement_note == "called ED"


@pytest.mark.django_db
def test_worklist_row_shows_the_alert_state(
    login: Callable[..., Client], make_user: Callable[..., AbstractBaseUser]
) -> None:
    alert = _raise()
    client = login(Role.RADIOLOGIST)
    row = client.get(f"/worklist/rows/{alert.study_id}/").content.decode()
    assert "Alert open" in row
    tech = make_user(Role.CHARGE_TECHNOLOGIST, "tech1")
    services.acknowledge_alert(alert.pk, tech, now=timezone.now())
    row = client.get(f"/worklist/rows/{alert.study_id}/").content.decode()
    assert "Alert acknowledged by tech1" in row
