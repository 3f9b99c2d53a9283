"""Orphan files: stored files a crash left in place without an instance row."""

from __future__ import annotations

import os
import shutil
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.triage.dicom_data import ct_study, encode, new_uid
from triage import tasks
from triage.ingest import core
from triage.ingest.orphans import find_orphans
from triage.models import Instance

pytestmark = pytest.mark.django_db

HOUR = 3600.0


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.fixture
def leftovers(storage_dir: Path) -> dict[str, Path]:
    """Two recorded instances, and what crashes leave beside them."""
    for dataset in ct_study(slices=2).datasets:
        core.store_instance(encode(dataset), now=timezone.now())
    recorded = storage_dir / Instance.objects.first().storage_path  # type: ignore[union-attr]
    series = recorded.parent
    # Renamed into place, never committed: in a known series and in a study
    # whose first instance never committed.
    in_series = series / f"{new_uid()}.0123456789abcdef.dcm"
    shutil.copy(recorded, in_series)
    new_study = storage_dir / new_uid() / new_uid() / f"{new_uid()}.fedcba98.dcm"
    new_study.parent.mkdir(parents=True)
    shutil.copy(recorded, new_study)
    # Just renamed into place: its transaction may be committing right now.
    young = series / f"{new_uid()}.00000000000000aa.dcm"
    shutil.copy(recorded, young)
    # Not ingest's: other names and folders are left alone.
    notes = series / "README.txt"
    notes.write_text("not an instance")
    other = storage_dir / "ai-heatmaps" / "1" / "2-ICH.jpg"
    other.parent.mkdir(parents=True)
    other.write_bytes(b"jpeg")
    for path in (in_series, new_study, notes, other):
        age(path, 2 * HOUR)
    for instance in Instance.objects.all():
        age(storage_dir / instance.storage_path, 2 * HOUR)
    return {"in_series": in_series, "new_study": new_study, "young": young}


def test_the_audit_reports_only_old_unrecorded_instance_files(
    storage_dir: Path, leftovers: dict[str, Path]
) -> None:
    result = find_orphans(
        storage_dir, older_than_seconds=HOUR, now=time.time(), remove=False
    )
    assert result.checked == 5
    assert set(result.unrecorded) == {leftovers["in_series"], leftovers["new_study"]}
    assert result.removed == 0
    assert leftovers["in_series"].exists()


def test_removing_leaves_every_recorded_file_and_young_ones(
    storage_dir: Path, leftovers: dict[str, Path]
) -> None:
    result = find_orphans(
        storage_dir, older_than_seconds=HOUR, now=time.time(), remove=True
    )
    assert result.removed == 2
    assert not leftovers["in_series"].exists()
    assert not leftovers["new_study"].exists()
    assert leftovers["young"].exists()
    for instance in Instance.objects.all():
        assert (storage_dir / instance.storage_path).exists()


def test_the_command_reports_then_removes(
    storage_dir: Path, leftovers: dict[str, Path]
) -> None:
    out = StringIO()
    call_command("audit_storage", stdout=out)
    assert "5 stored files checked, 2 recorded by no instance" in out.getvalue()
    assert leftovers["in_series"].exists()
    out = StringIO()
    call_command("audit_storage", "--remove", stdout=out)
    assert "2 removed" in out.getvalue()
    assert not leftovers["in_series"].exists()


def test_the_scheduled_task_removes_old_orphans(
    storage_dir: Path, leftovers: dict[str, Path]
) -> None:
    tasks.audit_storage()
    assert not leftovers["in_series"].exists()
    assert not leftovers["new_study"].exists()
    assert leftovers["young"].exists()
    assert Instance.objects.count() == 2


def test_an_empty_or_missing_storage_is_fine(tmp_path: Path) -> None:
    result = find_orphans(
        tmp_path / "none", older_than_seconds=HOUR, now=time.time(), remove=True
    )
    assert (result.checked, result.unrecorded, result.removed) == (0, (), 0)
