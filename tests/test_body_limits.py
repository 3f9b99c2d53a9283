"""The ASGI body limits: a stalled, slow or oversized body ends with 408/413."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import pytest

from radtriage.access_log import RedactPaths, redact_path
from radtriage.body_limits import BodyLimits


async def _reading_app(scope: Any, receive: Any, send: Any) -> None:
    """Reads the whole body as Django does; answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def _scope(path: str, length: int | None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": path, "headers": headers, "method": "POST"}


async def _run(
    limits: BodyLimits, scope: dict[str, Any], chunks: list[tuple[float, bytes, bool]]
) -> tuple[int, bytes]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def feed() -> None:
        for delay, body, more in chunks:
            await asyncio.sleep(delay)
            await queue.put({"type": "http.request", "body": body, "more_body": more})

    sent: list[dict[str, Any]] = []

    async def send(message: Mapping[str, Any]) -> None:
        sent.append(dict(message))

    feeder = asyncio.create_task(feed())
    await asyncio.wait_for(limits(scope, queue.get, send), 10)
    feeder.cancel()
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _limits(**overrides: Any) -> BodyLimits:
    options: dict[str, Any] = {
        "idle_seconds": 0.3,
        "body_seconds": 1.0,
        "max_bytes": 1000,
    }
    options.update(overrides)
    return BodyLimits(_reading_app, **options)


async def test_a_body_that_stops_arriving_is_refused_with_408() -> None:
    status, body = await _run(
        _limits(), _scope("/dicomweb/studies", 2 * 1024**3), [(0, b"x" * 10, True)]
    )
    assert status == 408
    assert b"not received in time" in body


async def test_a_slow_drip_outside_dicomweb_hits_the_whole_body_deadline() -> None:
    drip = [(0.2, b"x", True) for _ in range(10)] + [(0.2, b"x", False)]
    status, _ = await _run(_limits(), _scope("/api/worklist/filters/", 11), drip)
    assert status == 408


async def test_a_declared_or_actual_oversized_body_is_refused_with_413() -> None:
    status, _ = await _run(_limits(), _scope("/api/studies/1/feedback/", 10**9), [])
    assert status == 413
    chunks: list[tuple[float, bytes, bool]] = [
        (0, b"x" * 600, True),
        (0, b"x" * 600, False),
    ]
    status, _ = await _run(_limits(), _scope("/api/studies/1/feedback/", None), chunks)
    assert status == 413


async def test_a_steady_body_passes_and_dicomweb_is_not_size_bounded() -> None:
    chunks = [(0.1, b"x" * 900, True) for _ in range(14)] + [(0.1, b"x", False)]
    status, body = await _run(_limits(), _scope("/dicomweb/studies", None), chunks)
    assert (status, body) == (200, b"12601")


async def test_a_long_view_after_the_body_is_not_cut_off() -> None:
    async def slow_view(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        # Django listens for a disconnect while the view runs.
        listener = asyncio.create_task(receive())
        await asyncio.sleep(0.8)
        assert not listener.done()
        listener.cancel()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = BodyLimits(slow_view, idle_seconds=0.2, body_seconds=0.3, max_bytes=10)
    status, _ = await _run(limits, _scope("/reports/", 0), [(0, b"", False)])
    assert status == 200


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/dicomweb/studies?PatientID=P123", "/dicomweb/studies"),
        ("/dicomweb/studies/1.2.840.113619.2.1/", "/dicomweb/studies/:uid/"),
        ("/api/studies/12/claim/", "/api/studies/12/claim/"),
        ("/ws/worklist/?token=x", "/ws/worklist/"),
    ],
)
def test_logged_paths_lose_query_strings_and_uids(path: str, logged: str) -> None:
    assert redact_path(path) == logged
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", path, "1.1", 200),
        None,
    )
    RedactPaths().filter(record)
    assert record.getMessage() == f'127.0.0.1:5 - "GET {logged} HTTP/1.1" 200'
