"""radtriage.db: transactions whose commit need not wait for the disk."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from radtriage.db import recoverable_transaction


def synchronous() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA synchronous")
        row = cursor.fetchone()
    return int(row[0])


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's safety level")
@pytest.mark.django_db(transaction=True)
def test_sqlite_commits_without_a_flush_then_goes_back_to_full() -> None:
    assert synchronous() == 2  # FULL, from the settings
    with recoverable_transaction():
        Group.objects.create(name="kept")
    assert synchronous() == 2
    assert Group.objects.filter(name="kept").exists()


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's safety level")
@pytest.mark.django_db(transaction=True)
def test_a_failure_rolls_back_and_still_restores_the_safety_level() -> None:
    with pytest.raises(RuntimeError), recoverable_transaction():
        Group.objects.create(name="gone")
        raise RuntimeError("boom")
    assert synchronous() == 2
    assert not Group.objects.filter(name="gone").exists()


@pytest.mark.django_db
def test_inside_an_outer_transaction_it_is_a_savepoint() -> None:
    with pytest.raises(RuntimeError), recoverable_transaction():
        Group.objects.create(name="inner")
        raise RuntimeError("boom")
    assert not Group.objects.filter(name="inner").exists()
