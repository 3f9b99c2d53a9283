"""A real embedded RadTriage process and a real headless Chromium.

Chromium comes from Debian (/usr/bin/chromium), driven by Playwright; nothing is
downloaded. Without it these tests skip, saying why; with REQUIRE_SERVICES=1 they
fail instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.harness.processes import ManagedProcess, clean_env, free_port, run_manage

CHROMIUM = Path(os.environ.get("RADTRIAGE_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # The machine's network is closed: no background calls home.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_PASSWORD = "browser-test-password"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.browser)


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    dicom_port: int
    var_dir: Path
    process: ManagedProcess
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database."""
        return run_manage(self.env, *args)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The embedded one-process server (web, listener, worker, beat) on SQLite."""
    var_dir = tmp_path_factory.mktemp("var")
    web_port, dicom_port = free_port(), free_port()
    env = clean_env(
        RADTRIAGE_VAR_DIR=str(var_dir),
        RADTRIAGE_WEB_PORT=str(web_port),
        RADTRIAGE_DICOM_PORT=str(dicom_port),
        RADTRIAGE_HL7_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
    )
    run_manage(env, "migrate", "--noinput")
    run_manage(env, "seed_demo", "--studies", "0", "--password", DEMO_PASSWORD)
    process = ManagedProcess.start(
        "serve",
        [sys.executable, "manage.py", "serve"],
        env=env,
        log_path=var_dir / "serve.log",
    )
    with process:
        process.wait_for_port(web_port)
        process.wait_for_port(dicom_port)
        yield RunningServer(
            f"http://127.0.0.1:{web_port}", dicom_port, var_dir, process, env
        )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = (
            f"Chromium not found at {CHROMIUM}: apt-get install chromium "
            "(.ci/run does). Set REQUIRE_SERVICES=1 to fail instead of skipping."
        )
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def logged_in_page(
    browser: Browser, server: RunningServer
) -> Iterator[Callable[[str], Page]]:
    """Open a fresh browser context logged in as a demo user."""
    contexts: list[BrowserContext] = []

    def open_as(username: str) -> Page:
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{server.base_url}/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", DEMO_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        return page

    yield open_as
    for context in contexts:
        context.close()
