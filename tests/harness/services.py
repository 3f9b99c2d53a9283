"""Real services and real processes, shared by tests/integration and tests/faults.

Without PostgreSQL or Redis these tests skip, saying why; with
REQUIRE_SERVICES=1 (as .ci/run sets) a missing service fails them instead.
Each suite's conftest imports the fixtures from here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from tests.harness.processes import (
    ManagedProcess,
    Processes,
    clean_env,
    run_manage,
)

POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# A database number of its own, flushed before use, so stale tasks never leak in.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")


def _unavailable(service: str, reason: str) -> None:
    message = (
        f"{service} is not reachable ({reason}); start it or run .ci/run, which "
        "does. Set REQUIRE_SERVICES=1 to fail instead of skipping."
    )
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        _unavailable(
            "PostgreSQL at " + POSTGRES_URL.rsplit("@", 1)[-1], type(exc).__name__
        )
    return POSTGRES_URL


@pytest.fixture
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"radtriage_it_{secrets.token_hex(4)}"
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield postgres_admin_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> str:
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.flushdb()
    except redis.RedisError as exc:
        _unavailable("Redis at " + REDIS_URL, type(exc).__name__)
    return REDIS_URL


@pytest.fixture
def production_env(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a production deployment on the real services."""
    return clean_env(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        RADTRIAGE_VAR_DIR=str(tmp_path / "var"),
        RADTRIAGE_STORAGE_DIR=str(tmp_path / "dicom"),
        PYTHONUNBUFFERED="1",
    )


@pytest.fixture
def manage(production_env: dict[str, str]) -> Callable[..., str]:
    """Run a management command against the real services; returns stdout."""

    def run(*args: str, input_text: str | None = None) -> str:
        return run_manage(production_env, *args, input_text=input_text, timeout=180)

    return run


@pytest.fixture
def migrated(manage: Callable[..., str]) -> None:
    manage("migrate", "--noinput")


@pytest.fixture
def start_process(
    production_env: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., ManagedProcess]]:
    """Start real processes (web, worker, listener); all stopped at teardown."""
    with Processes(tmp_path, production_env) as processes:
        yield processes.start
