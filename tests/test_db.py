"""radtriage.db: transactions whose commit need not wait for the disk; inserts
without the ORM's per-call cost."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from radtriage.db import insert_rows, recoverable_transaction
from triage.models import Patient, Study, StudyEvent


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


@pytest.mark.django_db
def test_inserted_rows_read_back_as_the_orm_would_store_them() -> None:
    study = Study.objects.create(
        patient=Patient.objects.create(patient_id="P1"), study_instance_uid="1.2.3"
    )
    at = timezone.now()
    keys = insert_rows(
        StudyEvent,
        [
            {"study_id": study.pk, "kind": "scored", "at": at, "detail": {"a": [1]}},
            {"study": study, "kind": "received", "at": at},  # detail: its default
        ],
    )
    assert len(keys) == 2
    first, second = (StudyEvent.objects.get(pk=key) for key in keys)
    assert (first.kind, first.at, first.detail) == ("scored", at, {"a": [1]})
    assert (second.study_id, second.kind, second.detail) == (study.pk, "received", {})
    assert second.actor is None


@pytest.mark.django_db
def test_a_row_clashing_with_a_unique_constraint_can_be_left_out() -> None:
    first = insert_rows(Group, [{"name": "readers"}])
    assert insert_rows(Group, [{"name": "readers"}], skip_conflicts=True) == []
    assert (
        list(Group.objects.filter(name="readers").values_list("pk", flat=True)) == first
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(Group, [{"name": "readers"}])


def test_an_unknown_field_is_refused_before_any_sql() -> None:
    with pytest.raises(ValueError, match="no field"):
        insert_rows(Group, [{"nmae": "typo"}])
