"""Shared fixtures: isolated DICOM storage, role users, logged-in clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, User
from django.test import Client

from triage import services
from triage.roles import Role

TEST_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _isolated_storage(settings: Any, tmp_path: Path) -> Path:
    storage = tmp_path / "dicom"
    settings.RADTRIAGE_STORAGE_DIR = storage
    return storage


@pytest.fixture(autouse=True)
def _product_hl7_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with the product's HL7 handlers, whatever another test
    registered (fakes are for the listener processes under test)."""
    from triage.hl7 import dispatch, handlers

    monkeypatch.setattr(dispatch, "_HANDLERS", {})
    handlers.register_all()


@pytest.fixture(autouse=True)
def _no_cached_report_feed() -> Iterator[None]:
    """Whether the RIS sends reports is cached per process: not across tests."""
    from worklist.site import forget_report_feed

    forget_report_feed()
    yield
    forget_report_feed()


@pytest.fixture
def storage_dir(settings: Any) -> Path:
    path: Path = settings.RADTRIAGE_STORAGE_DIR
    return path


@pytest.fixture
def make_user(db: None) -> Callable[..., AbstractBaseUser]:
    def make(role: Role, username: str | None = None) -> AbstractBaseUser:
        name = username or role.value.replace(" ", "_")
        return services.set_role_user(name, role, TEST_PASSWORD)

    return make


@pytest.fixture
def login(
    client: Client, make_user: Callable[..., AbstractBaseUser]
) -> Callable[..., Client]:
    def log_in(role: Role) -> Client:
        user = make_user(role)
        assert isinstance(user, User)
        client.force_login(user)
        return client

    return log_in
