"""`manage.py healthcheck --process`: each process's probe, healthy and not."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from radtriage.process_health import (
    BEAT_STALE_SECONDS,
    probe_beat,
    probe_hl7_listener,
    probe_listener,
    probe_web,
    probe_worker,
)
from tests.harness.processes import free_port


class _Healthz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.server.seen_host = self.headers["Host"]  # type: ignore[attr-defined]
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@override_settings(ALLOWED_HOSTS=[".hospital.example"])
def test_web_probe_asks_healthz_with_an_allowed_host(
    web_server: ThreadingHTTPServer,
) -> None:
    result = probe_web("0.0.0.0", web_server.server_address[1])
    assert result.healthy, result.detail
    assert web_server.seen_host == "hospital.example"  # type: ignore[attr-defined]


def test_web_probe_fails_on_an_error_status(
    web_server: ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Healthz, "status", 503)
    result = probe_web("127.0.0.1", web_server.server_address[1])
    assert not result.healthy
    assert "503" in result.detail


def test_web_probe_fails_when_nothing_listens() -> None:
    assert not probe_web("127.0.0.1", free_port()).healthy


@pytest.fixture
def echo_scp() -> Iterator[int]:
    ae = AE(ae_title="RADTRIAGE")
    ae.add_supported_context(Verification)
    # Associations asking for another AE title are rejected, as an allowlist does.
    ae.require_called_aet = True
    server = ae.start_server(
        ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_ECHO, lambda e: 0)]
    )
    assert server is not None
    yield int(server.server_address[1])
    server.shutdown()


def test_listener_probe_echoes(echo_scp: int) -> None:
    result = probe_listener("127.0.0.1", echo_scp, "RADTRIAGE")
    assert result.healthy, result.detail
    assert "C-ECHO succeeded" in result.detail


def test_listener_probe_counts_a_rejection_as_an_answer(echo_scp: int) -> None:
    result = probe_listener("127.0.0.1", echo_scp, "OTHER")
    assert result.healthy, result.detail
    assert "rejected" in result.detail


def test_listener_probe_fails_when_nothing_listens() -> None:
    assert not probe_listener("127.0.0.1", free_port(), "RADTRIAGE").healthy


def test_beat_probe_reads_the_schedule_file_age(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    assert not probe_beat(schedule, now=1_000_000.0).healthy
    written = tmp_path / "celerybeat-schedule.db"
    written.write_bytes(b"")
    os.utime(written, (1_000_000.0, 1_000_000.0))
    assert probe_beat(schedule, now=1_000_000.0 + BEAT_STALE_SECONDS - 1).healthy
    assert not probe_beat(schedule, now=1_000_000.0 + BEAT_STALE_SECONDS + 1).healthy


def test_worker_probe_fails_when_no_worker_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("radtriage.process_health.PROBE_TIMEOUT_SECONDS", 0.2)
    result = probe_worker("celery@nowhere")
    assert not result.healthy
    assert "silent" in result.detail


def test_healthcheck_command_exits_non_zero_when_unhealthy() -> None:
    with (
        override_settings(RADTRIAGE_WEB_PORT=free_port()),
        pytest.raises(CommandError, match="unhealthy: web"),
    ):
        call_command("healthcheck", process="web")


def test_hl7_listener_probe_connects_without_sending() -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        result = probe_hl7_listener("0.0.0.0", port)
        conn, _ = server.accept()
        with conn:
            conn.settimeout(2)
            assert conn.recv(1) == b""  # closed, nothing sent (nothing stored)
    assert result.healthy, result.detail


def test_hl7_listener_probe_fails_when_nothing_listens() -> None:
    result = probe_hl7_listener("127.0.0.1", free_port())
    assert not result.healthy
    assert "hl7-listener" in result.detail
