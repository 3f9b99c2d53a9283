"""The board's websocket: live alert deltas, and the browser's receipts."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.utils import timezone

from worklist.alerts import services
from worklist.alerts.broadcast import ALERTS_GROUP
from worklist.consumers import SessionBoundConsumer

VIEW_ALERT_BOARD = "triage.view_alert_board"


class AlertConsumer(SessionBoundConsumer):
    """Pushes alert deltas to users who may watch the board; refuses others.

    The browser answers ``{"type": "alerts.received", "id": N}`` once it shows
    an alert: the first such receipt from a user who may acknowledge alerts is
    the alert's delivery time; others' receipts are ignored.
    """

    relay_group = ALERTS_GROUP
    permission = VIEW_ALERT_BOARD

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not await self.still_valid():
            return
        if not isinstance(content, dict) or content.get("type") != "alerts.received":
            return
        alert_id = content.get("id")
        if isinstance(alert_id, int) and not isinstance(alert_id, bool):
            client = self.scope.get("client") or (None,)
            await _mark_delivered(alert_id, self.scope["user"], client[0])

    async def alerts_delta(self, event: dict[str, Any]) -> None:
        if await self.still_valid():
            await self.send_json(event["delta"])


@database_sync_to_async
def _mark_delivered(alert_id: int, user: Any, remote_addr: str | None) -> None:
    services.mark_delivered(alert_id, user, now=timezone.now(), remote_addr=remote_addr)
