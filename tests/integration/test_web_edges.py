"""The web process's edges, on real uvicorn processes: access logs without PHI
(production ``uvicorn`` and the embedded ``serve``), and a body that never
arrives ends with 408 instead of holding its connection for ever."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

from tests.harness.processes import ManagedProcess, clean_env, free_port, run_manage
from tests.harness.web import web_command

SECRET_PATIENT_ID = "PID-SECRET-4711"
SECRET_UID = "1.2.826.0.1.3680043.99.4711"


def _get(url: str, token: str | None = None) -> int:
    headers = {"Authorization": f"Token {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=10).status_code


def _probe(base_url: str, token: str | None) -> None:
    assert _get(f"{base_url}/dicomweb/studies?PatientID={SECRET_PATIENT_ID}") == 401
    if token is not None:
        url = f"{base_url}/dicomweb/studies?PatientID={SECRET_PATIENT_ID}&limit=5"
        assert _get(url, token) == 200
    _get(f"{base_url}/dicomweb/studies/{SECRET_UID}/")


def test_uvicorn_access_log_has_no_query_strings_or_uids(
    manage: Callable[..., str],
    migrated: None,
    start_process: Callable[..., ManagedProcess],
) -> None:
    token = manage("set_integration_user", "pacs").strip()
    port = free_port()
    web = start_process("web", web_command(port))
    web.wait_for_port(port)
    _probe(f"http://127.0.0.1:{port}", token)
    web.wait_for_log('"GET /dicomweb/studies HTTP/1.1" 200')
    web.stop()
    log = web.log_text()
    assert '"GET /dicomweb/studies HTTP/1.1" 401' in log
    assert "/dicomweb/studies/:uid/" in log
    assert SECRET_PATIENT_ID not in log
    assert SECRET_UID not in log
    assert "?" not in "".join(line for line in log.splitlines() if "HTTP/1.1" in line)


def test_embedded_serve_access_log_has_no_query_strings(tmp_path: Path) -> None:
    web_port, dicom_port = free_port(), free_port()
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(tmp_path / "var"),
        RADTRIAGE_WEB_PORT=str(web_port),
        RADTRIAGE_DICOM_PORT=str(dicom_port),
        RADTRIAGE_HL7_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    run_manage(env, "migrate", "--noinput")
    with ManagedProcess.start(
        "serve",
        [sys.executable, "manage.py", "serve"],
        env=env,
        log_path=tmp_path / "serve.log",
    ) as serve:
        serve.wait_for_port(web_port)
        _probe(f"http://127.0.0.1:{web_port}", None)
        serve.wait_for_log('"GET /dicomweb/studies HTTP/1.1" 401')
    log = serve.log_text()
    assert SECRET_PATIENT_ID not in log
    assert SECRET_UID not in log


def test_a_declared_2_gb_body_that_never_comes_is_cut_off(
    migrated: None, start_process: Callable[..., ManagedProcess]
) -> None:
    port = free_port()
    web = start_process(
        "web", web_command(port), extra_env={"RADTRIAGE_BODY_IDLE_SECONDS": "2"}
    )
    web.wait_for_port(port)
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=15) as conn:
        conn.sendall(
            b"POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: multipart/related; type=application/dicom; boundary=b\r\n"
            b"Content-Length: 2147483648\r\n\r\n0123456789"
        )
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    elapsed = time.monotonic() - started
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    # Cut off after the idle limit, and the connection closed (recv gave b"").
    assert elapsed < 10, elapsed
