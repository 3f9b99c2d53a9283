"""The Content-Security-Policy breaks nothing: every page of every role loads
in a real browser without one CSP violation, and logging out in one tab sends
a live worklist in another to the login page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import RunningServer


def _violations(page: Page) -> list[str]:
    found: list[str] = []
    page.on(
        "console",
        lambda message: (
            found.append(message.text)
            if "Content Security Policy" in message.text
            or "Content-Security-Policy" in message.text
            else None
        ),
    )
    return found


@pytest.mark.parametrize(
    ("username", "paths"),
    [
        ("radiologist", ["/worklist/"]),
        ("chargetech", ["/alerts/"]),
        ("depthead", ["/reports/", "/reports/ai/", "/alerts/"]),
        ("admin", ["/admin/", "/admin/auth/user/", "/admin/auth/user/add/"]),
    ],
)
def test_pages_load_without_csp_violations(
    logged_in_page: Callable[[str], Page],
    server: RunningServer,
    username: str,
    paths: list[str],
) -> None:
    page = logged_in_page(username)
    violations = _violations(page)
    for path in paths:
        page.goto(f"{server.base_url}{path}")
        page.wait_for_load_state("networkidle")
    assert violations == []


def test_logging_out_sends_the_open_worklist_to_the_login_page(
    logged_in_page: Callable[[str], Page], server: RunningServer
) -> None:
    page = logged_in_page("radiologist")
    assert page.url.endswith("/worklist/")
    page.wait_for_timeout(1000)  # the websocket is open
    other = page.context.new_page()
    other.goto(f"{server.base_url}/worklist/")
    other.click(".logout button[type=submit]")
    page.wait_for_url(f"{server.base_url}/accounts/login/**", timeout=10_000)
