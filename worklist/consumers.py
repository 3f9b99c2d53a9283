"""Websocket consumers: live worklist deltas for signed-in readers."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

WORKLIST_GROUP = "worklist"


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    """Pushes worklist deltas to radiologists; refuses anyone else.

    Deltas are relayed in sequence. When one is missing (the channel layer drops
    messages for a slow reader, or the counter restarted), the reader is told to
    resync from the API before it gets the next; a delta older than the last one
    relayed is dropped, as the resync covers it.
    """

    last_seq: int | None = None
    epoch: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        if not await self._may_read(user):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(WORKLIST_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(WORKLIST_GROUP, self.channel_name)

    async def worklist_delta(self, event: dict[str, Any]) -> None:
        delta: dict[str, Any] = event["delta"]
        seq, epoch = int(delta["seq"]), str(delta["epoch"])
        if self.last_seq is not None:
            if epoch == self.epoch and seq <= self.last_seq:
                return
            if epoch != self.epoch or seq != self.last_seq + 1:
                await self.send_json({"type": "worklist.resync", "reason": "gap"})
        self.last_seq, self.epoch = seq, epoch
        await self.send_json(delta)

    @staticmethod
    async def _may_read(user: Any) -> bool:
        return bool(await user.ahas_perm("triage.read_studies"))
