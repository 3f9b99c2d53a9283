"""The real web process for tests and benches: its command line, a signed-in session."""

from __future__ import annotations

import re
import sys

import requests


def web_command(port: int, *, log_level: str | None = None) -> list[str]:
    """uvicorn serving the ASGI application on loopback at ``port``."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "radtriage.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if log_level is not None:
        command += ["--log-level", log_level]
    return command


def log_in(base_url: str, username: str, password: str) -> requests.Session:
    """Sign in through the login form; the session carries its cookie."""
    session = requests.Session()
    page = session.get(f"{base_url}/accounts/login/", timeout=10)
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert match is not None
    response = session.post(
        f"{base_url}/accounts/login/",
        data={
            "csrfmiddlewaretoken": match.group(1),
            "username": username,
            "password": password,
        },
        headers={"Referer": f"{base_url}/accounts/login/"},
        timeout=10,
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return session
