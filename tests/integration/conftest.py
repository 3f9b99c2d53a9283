"""The integration tests: real PostgreSQL, Redis and processes (tests/harness)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.services import (  # noqa: F401 - fixtures
    database_url,
    manage,
    migrated,
    postgres_admin_url,
    production_env,
    redis_url,
    start_process,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
