"""A real embedded RadTriage process and a real headless Chromium.

Chromium comes from Debian (/usr/bin/chromium), driven by Playwright; nothing is
downloaded. Without it these tests skip, saying why; with REQUIRE_SERVICES=1 they
fail instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.integration.conftest import REPO_ROOT, free_port
from tests.integration.processes import ManagedProcess

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
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {args} failed:\n{result.stderr}")
        return result.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The embedded one-process server (web, listener, worker, beat) on SQLite."""
    var_dir = tmp_path_factory.mktemp("var")
    web_port, dicom_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "RADTRIAGE_", "DATABASE_", "REDIS_"))
    }
    env.update(
        RADTRIAGE_VAR_DIR=str(var_dir),
        RADTRIAGE_WEB_PORT=str(web_port),
        RADTRIAGE_DICOM_PORT=str(dicom_port),
        PYTHONUNBUFFERED="1",
    )
    for args in (("migrate", "--noinput"), ("seed_demo", "--studies", "0")):
        subprocess.run(
            [
                sys.executable,
                "manage.py",
                *args,
                *(("--password", DEMO_PASSWORD) if args[0] == "seed_demo" else ()),
            ],
            cwd=REPO_ROOT,
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    process = ManagedProcess.start(
        "serve",
        [sys.executable, "manage.py", "serve"],
        cwd=REPO_ROOT,
        env=env,
        log_path=var_dir / "serve.log",
    )
    try:
        process.wait_for_port(web_port)
        process.wait_for_port(dicom_port)
        yield RunningServer(
            f"http://127.0.0.1:{web_port}", dicom_port, var_dir, process, env
        )
    finally:
        process.stop()


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
