"""Websocket consumers: live worklist deltas for signed-in readers."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

WORKLIST_GROUP = "worklist"


class WorklistConsumer(AsyncJsonWebsocketConsumer):
    """Pushes worklist changes to radiologists; refuses anyone else."""

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

    async def worklist_study_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event["payload"])

    @staticmethod
    async def _may_read(user: Any) -> bool:
        return bool(await user.ahas_perm("triage.read_studies"))
