"""The integration tests: real PostgreSQL, Redis and processes (tests/harness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.services import (
    POSTGRES_URL,
    REDIS_URL,
    REPO_ROOT,
    database_url,
    free_port,
    manage,
    migrated,
    postgres_admin_url,
    production_env,
    redis_url,
    start_process,
    wait_until,
)

# Fixtures for the tests here, and helpers older tests import from this module.
__all__ = [
    "POSTGRES_URL",
    "REDIS_URL",
    "REPO_ROOT",
    "database_url",
    "free_port",
    "manage",
    "migrated",
    "postgres_admin_url",
    "production_env",
    "redis_url",
    "start_process",
    "wait_until",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
