"""Websocket consumers: live worklist deltas for signed-in readers."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, ClassVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone

WORKLIST_GROUP = "worklist"
#: Close code for "your session ended": the browser goes to the login page.
SESSION_ENDED = 4401


def session_group(session_key: str) -> str:
    """The group of one login session's websockets, closed at its logout.

    Named by a hash: the session key is a credential, and group names are
    visible to anyone who can read the channel layer's Redis.
    """
    digest = hashlib.sha256(session_key.encode()).hexdigest()[:40]
    return f"session.{digest}"


@database_sync_to_async
def _stored_expiry(session_key: str) -> datetime | None:
    """When the database says the session ends (one query, at connect).

    Other session engines: None, and the session's own (later) estimate holds.
    """
    if settings.SESSION_ENGINE != "django.contrib.sessions.backends.db":
        return None
    from django.contrib.sessions.models import Session

    return (
        Session.objects.filter(session_key=session_key)
        .values_list("expire_date", flat=True)
        .first()
    )


def user_group(user_id: int) -> str:
    """The group of all one user's websockets, closed when the account is."""
    return f"user.{user_id}"


class SessionBoundConsumer(AsyncJsonWebsocketConsumer):
    """A websocket that lives no longer than the login session it opened in.

    It joins its session's group, so logging out closes it
    (``worklist.broadcast.end_session``), and its user's, so deactivating the
    account does (``end_user_sessions``); and it checks the session's expiry,
    read once at connect time, before each message it relays (no query per
    delta).

    A subclass names the group it relays and the permission a user needs to
    join it; anyone else is refused (4401 not signed in, 4403 not allowed).
    """

    relay_group: ClassVar[str]
    permission: ClassVar[str]

    _session_group: str | None = None
    _user_group: str | None = None
    _expires_at: datetime | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await user.ahas_perm(self.permission):
            await self.close(code=4403)
            return
        await self.join_session()
        await self.channel_layer.group_add(self.relay_group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(self.relay_group, self.channel_name)
        await self.leave_session()

    async def join_session(self) -> None:
        user = self.scope.get("user")
        if user is not None and user.pk is not None:
            self._user_group = user_group(int(user.pk))
            await self.channel_layer.group_add(self._user_group, self.channel_name)
        session = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if session is None or not key:
            return
        self._session_group = session_group(key)
        self._expires_at = await _stored_expiry(key) or session.get_expiry_date()
        await self.channel_layer.group_add(self._session_group, self.channel_name)

    async def leave_session(self) -> None:
        if self._user_group is not None:
            await self.channel_layer.group_discard(self._user_group, self.channel_name)
        if self._session_group is not None:
            await self.channel_layer.group_discard(
                self._session_group, self.channel_name
            )

    async def still_valid(self) -> bool:
        """False, after closing the socket, once the session has expired."""
        if self._expires_at is not None and timezone.now() >= self._expires_at:
            await self.close(code=SESSION_ENDED)
            return False
        return True

    async def session_ended(self, event: dict[str, Any]) -> None:
        await self.close(code=SESSION_ENDED)


class WorklistConsumer(SessionBoundConsumer):
    """Pushes worklist deltas to radiologists; refuses anyone else.

    Deltas are relayed in sequence. When one is missing (the channel layer drops
    messages for a slow reader, or the counter restarted), the reader is told to
    resync from the API before it gets the next; a delta older than the last one
    relayed is dropped, as the resync covers it.
    """

    relay_group = WORKLIST_GROUP
    permission = "triage.read_studies"

    last_seq: int | None = None
    epoch: str | None = None

    async def worklist_delta(self, event: dict[str, Any]) -> None:
        if not await self.still_valid():
            return
        delta: dict[str, Any] = event["delta"]
        seq, epoch = int(delta["seq"]), str(delta["epoch"])
        if self.last_seq is not None:
            if epoch == self.epoch and seq <= self.last_seq:
                return
            if epoch != self.epoch or seq != self.last_seq + 1:
                await self.send_json({"type": "worklist.resync", "reason": "gap"})
        self.last_seq, self.epoch = seq, epoch
        await self.send_json(delta)
