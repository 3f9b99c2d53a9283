"""Each role logs in through a real browser and lands on its own page."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import RunningServer


@pytest.mark.parametrize(
    ("username", "path", "heading"),
    [
        ("radiologist", "/worklist/", "Worklist"),
        ("chargetech", "/alerts/", "Critical-finding board"),
        ("depthead", "/reports/", "Reports"),
        ("admin", "/admin/", "Site administration"),
    ],
)
def test_role_lands_on_its_page_in_a_real_browser(
    logged_in_page: Callable[[str], Page],
    server: RunningServer,
    username: str,
    path: str,
    heading: str,
) -> None:
    page = logged_in_page(username)
    assert page.url == f"{server.base_url}{path}"
    assert heading in page.inner_text("h1")
