"""Time and size limits on receiving a request body, as ASGI middleware.

uvicorn has no body timeout: a request that declares a 2 GB body and sends ten
bytes holds its connection (and Django's request task) for ever. Here the body
must keep arriving: a gap of more than ``idle_seconds`` between two chunks ends
the request with 408, and outside DICOMweb (where a STOW-RS study may be large
and slow) the whole body must arrive within ``body_seconds`` and hold at most
``max_bytes`` (a larger declared Content-Length is refused with 413 before a
byte is read). ASGI middleware rather than a server option, so the same limits
hold under ``./run web``, the embedded ``serve`` and any other ASGI server, and
so they can tell a STOW-RS upload from a JSON call by its path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = Mapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_DISCONNECT: Message = {"type": "http.disconnect"}


class _BodyRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimits:
    """Ends a request whose body stalls, drags on or is too large.

    Args:
        app: the ASGI application.
        idle_seconds: the longest wait for the next body chunk, everywhere.
        body_seconds: the longest time to receive a whole body (not DICOMweb).
        max_bytes: the largest body accepted (not DICOMweb).
        unbounded_prefixes: paths whose bodies only the idle limit applies to.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        idle_seconds: float,
        body_seconds: float,
        max_bytes: int,
        unbounded_prefixes: tuple[str, ...] = ("/dicomweb/",),
    ) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.body_seconds = body_seconds
        self.max_bytes = max_bytes
        self.unbounded_prefixes = unbounded_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bounded = not str(scope.get("path", "")).startswith(self.unbounded_prefixes)
        declared = _declared_length(scope)
        if bounded and declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, "request body too large")
            return
        deadline = time.monotonic() + self.body_seconds if bounded else None
        state = {"complete": False, "received": 0, "started": False}
        refused: list[_BodyRefused] = []

        async def limited_receive() -> Message:
            if state["complete"] or refused:
                # The body is in: Django now waits for the client to go away
                # for as long as the view runs, which is no business of ours.
                return await receive() if not refused else _DISCONNECT
            wait = self.idle_seconds
            if deadline is not None:
                wait = min(wait, max(deadline - time.monotonic(), 0.0))
            try:
                message = await asyncio.wait_for(receive(), wait)
            except TimeoutError:
                refused.append(_BodyRefused(408, "request body not received in time"))
                return _DISCONNECT
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if bounded and state["received"] > self.max_bytes:
                    refused.append(_BodyRefused(413, "request body too large"))
                    return _DISCONNECT
                if not message.get("more_body", False):
                    state["complete"] = True
            return message

        async def watched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        await self.app(scope, limited_receive, watched_send)
        if refused and not state["started"]:
            logger.info(
                "refused a request body status=%d reason=%s",
                refused[0].status,
                refused[0].reason,
            )
            await _refuse(send, refused[0].status, refused[0].reason)


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = reason.encode() + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
