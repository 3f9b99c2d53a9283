"""The web process restarted under connected worklist websockets: every client
reconnects, resyncs as live.js does, and gets the next delta.

Sessions live in PostgreSQL, so a restart signs nobody out; the channel layer
is the shared Redis, so a delta sent from another process (here a management
shell, as a worker would) reaches the consumers of the new web process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import requests
import websockets

from tests.harness.processes import ManagedProcess, free_port
from tests.harness.web import log_in, web_command

CLIENTS = 5
# From the restart to every client connected again: uvicorn's start (a few
# seconds on this loaded 2-core machine) plus the clients' 0.2 s retry.
RECONNECT_BOUND_S = 20.0


async def connect_retrying(
    url: str, headers: dict[str, str], *, deadline: float
) -> Any:
    """Connect as live.js does after a close: try again until it opens."""
    while True:
        try:
            return await websockets.connect(url, additional_headers=headers)
        except (OSError, websockets.InvalidStatus, websockets.InvalidHandshake):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def test_clients_of_a_restarted_web_process_reconnect_resync_and_get_deltas(
    manage: Callable[..., str],
    migrated: None,
    start_process: Callable[..., ManagedProcess],
) -> None:
    password = "fault-password-1"
    manage("set_role_user", "reader", "radiologist", input_text=password + "\n")
    port = free_port()
    web = start_process("web-1", web_command(port))
    web.wait_for_port(port)
    base_url = f"http://127.0.0.1:{port}"
    session = log_in(base_url, "reader", password)
    headers = {
        "Cookie": f"sessionid={session.cookies['sessionid']}",
        "Origin": base_url,
    }
    url = f"ws://127.0.0.1:{port}/ws/worklist/"

    async def scenario() -> float:
        deadline = time.monotonic() + 30
        sockets = [
            await connect_retrying(url, headers, deadline=deadline)
            for _ in range(CLIENTS)
        ]
        web.stop()
        for socket in sockets:  # each sees its connection go
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(socket.recv(), timeout=10)
        restarted = time.monotonic()
        start_process("web-2", web_command(port))
        deadline = restarted + RECONNECT_BOUND_S + 30
        sockets = [
            await connect_retrying(url, headers, deadline=deadline)
            for _ in range(CLIENTS)
        ]
        reconnected = time.monotonic() - restarted
        # The resync live.js does on reconnect: the rows, with the session.
        for _ in sockets:
            rows = await asyncio.to_thread(
                session.get, f"{base_url}/worklist/rows/", timeout=10
            )
            assert rows.status_code == 200, rows.status_code
        await asyncio.to_thread(
            manage,
            "shell",
            "-c",
            "from worklist.broadcast import send_study_changed; "
            "send_study_changed(7, 3, 42.0)",
        )
        for socket in sockets:
            payload = json.loads(await asyncio.wait_for(socket.recv(), timeout=15))
            assert payload["type"] == "worklist.delta", payload
            assert payload["upserted"] == [
                {"id": 7, "version": 3, "priority_score": 42.0}
            ]
            await socket.close()
        return reconnected

    reconnected = asyncio.run(scenario())
    print(f"\nweb restarted: {CLIENTS} websockets back in {reconnected:.1f} s")
    assert reconnected <= RECONNECT_BOUND_S, reconnected
    assert requests.get(f"{base_url}/healthz", timeout=5).ok
