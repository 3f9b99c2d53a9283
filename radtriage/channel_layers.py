"""An in-memory channel layer that is safe to call from worker threads.

Only for the embedded mode, where web, worker and listener share one process.
The stock ``InMemoryChannelLayer`` resolves the consumer's waiting future with
``call_soon`` from whatever loop ``async_to_sync`` made in the sending thread, so
the server's loop is not woken and a message waits until something else wakes it
(up to a second under daphne, forever on an idle loop). Sends from other loops
are therefore handed to the server's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import InMemoryChannelLayer

_CROSS_LOOP_TIMEOUT_SECONDS = 5.0


async def _as_coroutine(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    """``InMemoryChannelLayer`` whose state is only touched on the server's loop."""

    _server_loop: asyncio.AbstractEventLoop | None = None

    def _bind(self) -> None:
        # Only consumers receive, and they run on the server's loop.
        self._server_loop = asyncio.get_running_loop()

    async def _on_server_loop(
        self, fn: Callable[..., Awaitable[Any]], *args: Any
    ) -> Any:
        loop = self._server_loop
        if loop is None or not loop.is_running() or loop is asyncio.get_running_loop():
            return await fn(*args)
        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(
            _as_coroutine(fn(*args)), loop
        )
        return await asyncio.wait_for(
            asyncio.wrap_future(future), _CROSS_LOOP_TIMEOUT_SECONDS
        )

    async def receive(self, channel: str) -> dict[str, Any]:
        self._bind()
        return await super().receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        await self._on_server_loop(super().group_add, group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        await self._on_server_loop(super().group_discard, group, channel)

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await self._on_server_loop(super().send, channel, message)

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self._on_server_loop(super().group_send, group, message)
