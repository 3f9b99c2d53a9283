"""Websockets on a real uvicorn over real Redis: an idle socket stays open past
redis-py's old 5 s socket timeout, and logging out closes the session's sockets."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable

import websockets

from tests.harness.processes import ManagedProcess, free_port
from tests.harness.web import log_in, web_command

PASSWORD = "integration-password-1"
# Well past the 5 s blocking pop and socket timeout that used to drop it.
IDLE_SECONDS = 12


def _web(start_process: Callable[..., ManagedProcess]) -> tuple[ManagedProcess, int]:
    port = free_port()
    web = start_process("web", web_command(port))
    web.wait_for_port(port)
    return web, port


def test_an_idle_websocket_stays_open_and_still_gets_deltas(
    manage: Callable[..., str],
    migrated: None,
    start_process: Callable[..., ManagedProcess],
) -> None:
    manage("set_role_user", "reader", "radiologist", input_text=PASSWORD + "\n")
    web, port = _web(start_process)
    base_url = f"http://127.0.0.1:{port}"
    cookie = f"sessionid={log_in(base_url, 'reader', PASSWORD).cookies['sessionid']}"

    async def idle_then_delta() -> tuple[float, dict[str, object]]:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/worklist/",
            additional_headers={"Cookie": cookie, "Origin": base_url},
            # Our own pings would hide a server that drops idle consumers.
            ping_interval=None,
        ) as socket:
            started = time.monotonic()
            try:
                early = await asyncio.wait_for(socket.recv(), timeout=IDLE_SECONDS)
            except TimeoutError:
                early = None
            assert early is None, f"unexpected message while idle: {early!r}"
            idle = time.monotonic() - started
            await asyncio.to_thread(
                manage,
                "shell",
                "-c",
                "from worklist.broadcast import send_study_changed; "
                "send_study_changed(11, 4, 9.0)",
            )
            message = await asyncio.wait_for(socket.recv(), timeout=20)
            return idle, dict(json.loads(message))

    idle, payload = asyncio.run(idle_then_delta())
    assert idle >= IDLE_SECONDS - 0.5
    assert payload["type"] == "worklist.delta"
    assert payload["upserted"] == [{"id": 11, "version": 4, "priority_score": 9.0}]
    web.stop()
    log = web.log_text()
    assert "TimeoutError" not in log
    assert "Timeout reading from" not in log
    # One connection, never dropped and re-made.
    assert log.count("[accepted]") == 1


def test_logging_out_closes_the_open_websocket(
    manage: Callable[..., str],
    migrated: None,
    start_process: Callable[..., ManagedProcess],
) -> None:
    manage("set_role_user", "reader", "radiologist", input_text=PASSWORD + "\n")
    _, port = _web(start_process)
    base_url = f"http://127.0.0.1:{port}"
    session = log_in(base_url, "reader", PASSWORD)
    cookie = f"sessionid={session.cookies['sessionid']}"

    async def log_out_while_open() -> tuple[int | None, float]:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/worklist/",
            additional_headers={"Cookie": cookie, "Origin": base_url},
        ) as socket:

            def log_out() -> None:
                page = session.get(f"{base_url}/worklist/", timeout=10)
                token = re.search(
                    r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
                )
                assert token is not None
                response = session.post(
                    f"{base_url}/accounts/logout/",
                    data={"csrfmiddlewaretoken": token.group(1)},
                    headers={"Referer": f"{base_url}/worklist/"},
                    timeout=10,
                    allow_redirects=False,
                )
                assert response.status_code == 302

            await asyncio.to_thread(log_out)
            started = time.monotonic()
            try:
                await asyncio.wait_for(socket.recv(), timeout=10)
            except websockets.ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                return code, time.monotonic() - started
            return None, time.monotonic() - started

    code, after = asyncio.run(log_out_while_open())
    assert code == 4401
    assert after < 5
