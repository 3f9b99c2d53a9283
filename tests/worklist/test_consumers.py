"""The worklist websocket: who may connect, and that changes reach them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.utils import timezone

from radtriage.asgi import application
from tests.factories import StudyFactory
from triage.roles import ROLE_PERMISSIONS, Role
from worklist import services
from worklist.broadcast import send_study_changed
from worklist.consumers import WORKLIST_GROUP
from worklist.routing import websocket_urlpatterns

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _role_groups(transactional_db: None) -> None:
    """The role groups a data migration made, gone after another test's flush.

    (serialized_rollback would restore them, but collides with the content
    types re-created after such a flush.)
    """
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role.value)
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="triage", codename__in=codenames
            )
        )


def _communicator(user: AbstractBaseUser | None) -> WebsocketCommunicator:
    if user is None:
        # The whole stack, as a browser meets it: origin check, then session auth.
        return WebsocketCommunicator(
            application, "/ws/worklist/", headers=[(b"origin", b"http://localhost")]
        )
    # A signed-in user, placed in the scope as the auth middleware would.
    communicator = WebsocketCommunicator(
        URLRouter(websocket_urlpatterns), "/ws/worklist/"
    )
    communicator.scope["user"] = user  # type: ignore[typeddict-unknown-key]
    return communicator


async def test_anonymous_connection_is_refused() -> None:
    connected, _ = await _communicator(None).connect()
    assert not connected


async def test_foreign_origin_is_refused(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    communicator = WebsocketCommunicator(
        application, "/ws/worklist/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_user_without_reading_role_is_refused(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = await database_sync_to_async(make_user)(Role.DEPARTMENT_HEAD)
    connected, code = await _communicator(user).connect()
    assert not connected
    assert code == 4403


async def test_radiologist_receives_study_changes_sent_from_a_worker_thread(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    communicator = _communicator(user)
    connected, _ = await communicator.connect()
    assert connected
    thread = threading.Thread(target=send_study_changed, args=(5, 2, 77.5))
    thread.start()
    message: dict[str, Any] = await communicator.receive_json_from(timeout=5)
    await asyncio.to_thread(thread.join)  # never block the loop the send needs
    assert message["type"] == "worklist.delta"
    assert message["upserted"] == [{"id": 5, "version": 2, "priority_score": 77.5}]
    assert message["removed"] == []
    assert set(message) == {"type", "seq", "epoch", "upserted", "removed"}
    await communicator.disconnect()


def _delta(seq: int, epoch: str = "e1", study_id: int = 1) -> dict[str, Any]:
    return {
        "type": "worklist.delta",
        "delta": {
            "type": "worklist.delta",
            "seq": seq,
            "epoch": epoch,
            "upserted": [{"id": study_id, "version": seq, "priority_score": 1.0}],
            "removed": [],
        },
    }


async def _connected(
    make_user: Callable[..., AbstractBaseUser],
) -> WebsocketCommunicator:
    user = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    communicator = _communicator(user)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_deltas_in_sequence_are_relayed_as_they_come(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    communicator = await _connected(make_user)
    layer = get_channel_layer()
    assert layer is not None
    for seq in (7, 8, 9):
        await layer.group_send(WORKLIST_GROUP, _delta(seq))
        message = await communicator.receive_json_from(timeout=2)
        assert (message["type"], message["seq"]) == ("worklist.delta", seq)
    assert await communicator.receive_nothing(timeout=0.1)
    await communicator.disconnect()


async def test_a_sequence_gap_tells_the_browser_to_resync(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    communicator = await _connected(make_user)
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(WORKLIST_GROUP, _delta(1))
    assert (await communicator.receive_json_from(timeout=2))["seq"] == 1
    await layer.group_send(WORKLIST_GROUP, _delta(3))  # 2 was lost
    assert await communicator.receive_json_from(timeout=2) == {
        "type": "worklist.resync",
        "reason": "gap",
    }
    assert (await communicator.receive_json_from(timeout=2))["seq"] == 3
    # A late 2 is covered by the resync: dropped.
    await layer.group_send(WORKLIST_GROUP, _delta(2))
    assert await communicator.receive_nothing(timeout=0.2)
    # A restarted counter (new epoch) also asks for a resync.
    await layer.group_send(WORKLIST_GROUP, _delta(1, epoch="e2"))
    assert (await communicator.receive_json_from(timeout=2))["type"] == (
        "worklist.resync"
    )
    assert (await communicator.receive_json_from(timeout=2))["epoch"] == "e2"
    await communicator.disconnect()


def test_committed_claim_reaches_the_browser_without_phi(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    async def scenario() -> dict[str, Any]:
        communicator = await _connected(make_user)
        study = await database_sync_to_async(StudyFactory.create)(
            patient_class="emergency"
        )
        reader = await database_sync_to_async(make_user)(Role.RADIOLOGIST, "other")
        await asyncio.to_thread(
            services.claim_study, study.pk, reader, now=timezone.now()
        )
        message: dict[str, Any] = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        assert message["upserted"][0]["id"] == study.pk
        return message

    message = async_to_sync(scenario)()
    text = json.dumps(message)
    assert "SYNTHETIC" not in text  # patient name
    assert "ACC" not in text  # accession number
    assert "1.2.826" not in text  # UIDs


async def test_in_memory_layer_wakes_an_idle_loop_for_cross_thread_sends() -> None:
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel()
    await layer.group_add("probe", channel)
    receiving = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)  # the receiver now waits on this loop

    thread = threading.Thread(
        target=lambda: asyncio.run(layer.group_send("probe", {"type": "x.y"}))
    )
    thread.start()
    message = await asyncio.wait_for(receiving, timeout=2)
    await asyncio.to_thread(thread.join)  # never block the loop the send needs
    assert message["type"] == "x.y"


def _signed_in(user: AbstractBaseUser, *, expiry: int | None = None) -> Any:
    """A real login session for ``user``, as the session middleware keeps it."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    if expiry is not None:
        session.set_expiry(expiry)
    session.save()
    return session


@pytest.mark.parametrize("path", ["/ws/worklist/", "/ws/alerts/"])
async def test_logging_out_closes_the_sessions_websockets(
    make_user: Callable[..., AbstractBaseUser], path: str
) -> None:
    from django.test import Client

    role = Role.RADIOLOGIST if "worklist" in path else Role.CHARGE_TECHNOLOGIST
    user = await database_sync_to_async(make_user)(role)
    session = await database_sync_to_async(_signed_in)(user)
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user  # type: ignore[typeddict-unknown-key]
    communicator.scope["session"] = session  # type: ignore[typeddict-unknown-key]
    connected, _ = await communicator.connect()
    assert connected

    def log_out() -> None:
        client = Client()
        client.cookies["sessionid"] = session.session_key
        assert client.post("/accounts/logout/").status_code == 302

    await asyncio.to_thread(log_out)
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_a_socket_whose_session_expired_relays_nothing(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    session = await database_sync_to_async(_signed_in)(user, expiry=1)
    communicator = _communicator(user)
    communicator.scope["session"] = session  # type: ignore[typeddict-unknown-key]
    connected, _ = await communicator.connect()
    assert connected
    await asyncio.sleep(1.2)
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(WORKLIST_GROUP, _delta(1))
    closed = await communicator.receive_output(timeout=5)
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 4401


async def test_deactivating_the_account_closes_its_websockets(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    session = await database_sync_to_async(_signed_in)(user)
    communicator = _communicator(user)
    communicator.scope["session"] = session  # type: ignore[typeddict-unknown-key]
    connected, _ = await communicator.connect()
    assert connected

    def deactivate() -> None:
        user.is_active = False
        user.save()

    await asyncio.to_thread(deactivate)
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}


async def test_changing_the_password_closes_the_accounts_websockets(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    user = await database_sync_to_async(make_user)(Role.RADIOLOGIST)
    session = await database_sync_to_async(_signed_in)(user)
    communicator = _communicator(user)
    communicator.scope["session"] = session  # type: ignore[typeddict-unknown-key]
    connected, _ = await communicator.connect()
    assert connected

    def save_unchanged() -> None:
        user.save()  # a save that changes no password closes nothing

    await asyncio.to_thread(save_unchanged)
    assert await communicator.receive_nothing(timeout=0.5)

    def reset_password() -> None:
        user.set_password("a-new-password-after-a-theft")
        user.save()

    await asyncio.to_thread(reset_password)
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4401}
