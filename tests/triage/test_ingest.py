"""The one ingest path: stored, duplicate, replaced, and every refusal."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.db import DatabaseError
from django.utils import timezone
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

from tests.triage.dicom_data import (
    PYDICOM_BROKEN,
    ct_study,
    encode,
    modified,
    new_uid,
    pydicom_file_name,
    pydicom_test_files,
)
from triage import services
from triage.ingest import core, part10, storage
from triage.ingest import header as header_module
from triage.ingest.errors import (
    IngestError,
    InstanceTooLarge,
    InvalidUid,
    MissingAttribute,
    NotDicom,
    StorageUnavailable,
    StudyMismatch,
    TruncatedInstance,
    UidConflict,
    UnsupportedSopClass,
    UnsupportedTransferSyntax,
)
from triage.models import Instance, Series, Study, StudyEvent
from triage.services import StoreResult

pytestmark = pytest.mark.django_db


def store(data: bytes, **options: Any) -> services.StoreOutcome:
    return core.store_instance(data, now=timezone.now(), **options)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_an_instance_is_stored_as_received_and_recorded(storage_dir: Path) -> None:
    study = ct_study()
    data = encode(study.datasets[0])

    outcome = store(data)

    assert outcome.result is StoreResult.STORED
    instance = Instance.objects.select_related("series__study").get()
    assert instance.pk == outcome.instance_id
    assert (storage_dir / instance.storage_path).read_bytes() == data
    offset = part10.dataset_offset(data)
    assert instance.sha256 == hashlib.sha256(data[offset:]).hexdigest()
    assert instance.storage_path == (
        f"{study.study_instance_uid}/{study.series_instance_uid}/"
        f"{study.datasets[0].SOPInstanceUID}.{instance.sha256[:16]}.dcm"
    )
    assert instance.size_bytes == len(data)
    assert instance.series.study.study_instance_uid == study.study_instance_uid
    assert instance.series.study.modalities == "CT"
    assert instance.series.study.body_part_examined == "HEAD"
    assert instance.series.study.patient.patient_id == study.patient_id
    assert instance.plane == "axial"
    assert list(StudyEvent.objects.values_list("kind", flat=True)) == ["received"]
    # Nothing is left in the temporary folder.
    assert files_under(storage_dir) == [storage_dir / instance.storage_path]


def test_a_study_sent_twice_has_no_duplicates(storage_dir: Path) -> None:
    study = ct_study(slices=4)
    payloads = [encode(ds) for ds in study.datasets]
    first = [store(data).result for data in payloads]
    second = [store(data).result for data in payloads]

    assert first == [StoreResult.STORED] * 4
    assert second == [StoreResult.DUPLICATE] * 4
    assert Instance.objects.count() == 4
    assert Series.objects.get().instance_count == 4
    assert Study.objects.get().instance_count == 4
    assert len(files_under(storage_dir)) == 4


@pytest.mark.parametrize("cut", [128, 132], ids=["no preamble", "meta only"])
def test_a_stream_without_preamble_is_stored_as_a_proper_part_10_file(
    cut: int, storage_dir: Path
) -> None:
    data = encode(ct_study().datasets[0])
    assert store(data[cut:]).result is StoreResult.STORED
    instance = Instance.objects.get()
    assert (storage_dir / instance.storage_path).read_bytes() == data
    assert part10.meta_uids(data[cut:])[1] == instance.sop_instance_uid


def test_the_same_instance_by_c_store_and_stow_is_a_duplicate() -> None:
    dataset = ct_study().datasets[0]
    part10_stream = encode(dataset)
    offset = part10.dataset_offset(part10_stream)
    by_stow = store(part10_stream)
    by_c_store = core.store_dataset(
        part10_stream[offset:],
        sop_class_uid=dataset.SOPClassUID,
        sop_instance_uid=dataset.SOPInstanceUID,
        transfer_syntax_uid=dataset.file_meta.TransferSyntaxUID,
        now=timezone.now(),
    )
    assert by_stow.result is StoreResult.STORED
    assert by_c_store.result is StoreResult.DUPLICATE


def test_other_bytes_for_the_same_instance_replace_it(
    storage_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    dataset = ct_study().datasets[0]
    store(encode(dataset))
    old_path = storage_dir / Instance.objects.get().storage_path
    changed = modified(dataset, WindowCenter=80)

    with django_capture_on_commit_callbacks(execute=True):
        outcome = store(changed)

    assert outcome.result is StoreResult.REPLACED
    instance = Instance.objects.get()
    assert instance.replacement_count == 1
    assert instance.replaced_at is not None
    assert (storage_dir / instance.storage_path).read_bytes() == changed
    # The superseded version is gone; only the new one is on disk.
    assert not old_path.exists()
    assert files_under(storage_dir) == [storage_dir / instance.storage_path]
    assert Study.objects.get().instance_count == 1
    assert StudyEvent.objects.filter(kind="instance_replaced").count() == 1


def test_storing_the_first_version_again_after_a_replacement_is_a_replacement(
    storage_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    dataset = ct_study().datasets[0]
    original = encode(dataset)
    with django_capture_on_commit_callbacks(execute=True):
        store(original)
        store(modified(dataset, WindowCenter=80))
        assert store(original).result is StoreResult.REPLACED
    instance = Instance.objects.get()
    assert (storage_dir / instance.storage_path).read_bytes() == original
    assert len(files_under(storage_dir)) == 1


def test_a_late_instance_reopens_a_stable_study() -> None:
    study = ct_study(slices=2)
    store(encode(study.datasets[0]))
    Study.objects.update(stable_at=timezone.now())
    Series.objects.update(stable_at=timezone.now())

    store(encode(study.datasets[1]))

    assert Study.objects.get().stable_at is None
    assert Series.objects.get().stable_at is None
    assert StudyEvent.objects.filter(kind="reopened").count() == 1


def test_a_second_series_joins_the_study_and_its_modalities() -> None:
    study = ct_study()
    store(encode(study.datasets[0]))
    report = modified(study.datasets[1], SeriesInstanceUID=new_uid(), Modality="SR")
    store(report)
    assert Study.objects.get().modalities == "CT\\SR"
    assert Series.objects.count() == 2


# Each bad input: its error, its DICOM status, and nothing kept anywhere.


BAD_INPUTS: dict[str, tuple[Any, type[IngestError], int]] = {
    "not DICOM": (lambda ds: b"this is not DICOM at all" * 20, NotDicom, 0xC000),
    "truncated": (lambda ds: encode(ds)[:-1000], TruncatedInstance, 0xC000),
    "truncated in the header": (
        lambda ds: encode(ds)[:400],
        TruncatedInstance,
        0xC000,
    ),
    "no study UID": (
        lambda ds: modified(ds, "StudyInstanceUID"),
        MissingAttribute,
        0xA900,
    ),
    "no series UID": (
        lambda ds: modified(ds, "SeriesInstanceUID"),
        MissingAttribute,
        0xA900,
    ),
    "no SOP instance UID": (
        lambda ds: modified(ds, "SOPInstanceUID"),
        MissingAttribute,
        0xA900,
    ),
    "empty study UID": (
        lambda ds: modified(ds, StudyInstanceUID=""),
        MissingAttribute,
        0xA900,
    ),
    "path trick in the study UID": (
        lambda ds: modified(ds, StudyInstanceUID="../../etc"),
        InvalidUid,
        0xA900,
    ),
    "absolute path as series UID": (
        lambda ds: modified(ds, SeriesInstanceUID="/tmp/x"),
        InvalidUid,
        0xA900,
    ),
    "UID with a leading zero": (
        lambda ds: modified(ds, SOPInstanceUID="1.02.3"),
        InvalidUid,
        0xA900,
    ),
    "UID longer than 64": (
        lambda ds: modified(ds, StudyInstanceUID="1." + "2" * 70),
        InvalidUid,
        0xA900,
    ),
    "not a storage SOP class": (
        lambda ds: modified(ds, SOPClassUID="1.2.840.10008.5.1.4.1.2.1.1"),
        UnsupportedSopClass,
        0x0122,
    ),
    "unsupported transfer syntax": (
        lambda ds: _with_transfer_syntax(encode(ds), "1.2.840.10008.1.2.4.110"),
        UnsupportedTransferSyntax,
        0xC122,
    ),
}


def _with_transfer_syntax(data: bytes, uid: str) -> bytes:
    # Same length as Explicit VR Little Endian's UID padded: swap in place.
    old = b"1.2.840.10008.1.2.1\x00"
    assert old in data
    return data.replace(old, uid.encode().ljust(len(old), b"\x00")[: len(old)], 1)


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_each_bad_input_is_refused_with_its_status_and_nothing_kept(
    case: str, storage_dir: Path
) -> None:
    make, error, status = BAD_INPUTS[case]
    dataset = ct_study().datasets[0]
    with pytest.raises(error) as raised:
        store(make(dataset))
    assert raised.value.status == status
    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert files_under(storage_dir) == []


def test_an_instance_larger_than_the_cap_is_refused(
    settings: Any, storage_dir: Path
) -> None:
    data = encode(ct_study().datasets[0])
    settings.RADTRIAGE_MAX_INSTANCE_BYTES = len(data) - 1
    with pytest.raises(InstanceTooLarge) as raised:
        store(data)
    assert raised.value.status == 0xC001
    assert not Instance.objects.exists()
    assert files_under(storage_dir) == []


def test_a_stow_instance_of_another_study_than_the_url_is_refused(
    storage_dir: Path,
) -> None:
    data = encode(ct_study().datasets[0])
    with pytest.raises(StudyMismatch) as raised:
        store(data, expected_study_uid="1.2.3.4")
    assert raised.value.status == 0xA900
    assert not Instance.objects.exists()


def test_an_instance_moved_to_another_series_is_a_conflict() -> None:
    dataset = ct_study().datasets[0]
    store(encode(dataset))
    moved = modified(dataset, SeriesInstanceUID=new_uid(), WindowWidth=90)
    with pytest.raises(UidConflict):
        store(moved)
    assert Series.objects.count() == 1
    assert Instance.objects.count() == 1


def test_a_study_under_another_patient_is_a_conflict() -> None:
    study = ct_study(slices=2)
    store(encode(study.datasets[0]))
    other = modified(study.datasets[1], PatientID="OTHER")
    with pytest.raises(UidConflict):
        store(other)
    assert Instance.objects.count() == 1


def test_a_database_failure_leaves_no_row_and_no_file(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    study = ct_study(slices=2)
    store(encode(study.datasets[0]))
    real_note_arrival = services._note_arrival

    def failing(*args: Any, **kwargs: Any) -> None:
        real_note_arrival(*args, **kwargs)
        raise DatabaseError("connection lost")

    monkeypatch.setattr(services, "_note_arrival", failing)
    with pytest.raises(StorageUnavailable) as raised:
        store(encode(study.datasets[1]))
    assert raised.value.transient
    assert raised.value.status == 0xA700
    assert Instance.objects.count() == 1
    assert Study.objects.get().instance_count == 1
    assert len(files_under(storage_dir)) == 1

    monkeypatch.setattr(services, "_note_arrival", real_note_arrival)
    assert store(encode(study.datasets[1])).result is StoreResult.STORED


def test_a_commit_failure_after_the_rename_removes_the_file(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    data = encode(ct_study().datasets[0])
    real_move = storage.move_into_place

    def move_then_fail(*args: Any) -> None:
        real_move(*args)
        raise DatabaseError("server closed the connection")

    monkeypatch.setattr(core, "move_into_place", move_then_fail)
    with pytest.raises(StorageUnavailable):
        store(data)
    assert not Instance.objects.exists()
    assert files_under(storage_dir) == []


@pytest.mark.parametrize("damage", ["lost", "not whole"])
def test_a_resent_instance_whose_file_was_damaged_is_written_again(
    damage: str, storage_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    data = encode(ct_study().datasets[0])
    store(data)
    path = storage_dir / Instance.objects.get().storage_path
    # A crash after the commit, before the file or its folder reached the disk.
    if damage == "lost":
        path.unlink()
    else:
        path.write_bytes(data[: len(data) // 2] + bytes(len(data) - len(data) // 2))

    with django_capture_on_commit_callbacks(execute=True):
        outcome = store(data)

    assert outcome.result is StoreResult.REPLACED
    instance = Instance.objects.get()
    assert (storage_dir / instance.storage_path).read_bytes() == data
    assert files_under(storage_dir) == [storage_dir / instance.storage_path]


def test_a_storage_failure_leaves_no_row(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    def full_disk(root: Path, data: bytes, **_: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core, "write_incoming", full_disk)
    with pytest.raises(StorageUnavailable) as raised:
        store(encode(ct_study().datasets[0]))
    assert raised.value.transient
    assert not Instance.objects.exists()
    assert not Study.objects.exists()
    assert files_under(storage_dir) == []


def test_the_write_begins_before_the_header_is_parsed(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    events: list[str] = []
    real_write = storage.write_incoming
    real_read = header_module.read_header

    def write(root: Path, data: bytes, *, started: Any) -> Path:
        def note() -> None:
            events.append("write")
            started()

        return real_write(root, data, started=note)

    def read_header(data: bytes, **options: Any) -> Any:
        events.append("parse")
        return real_read(data, **options)

    monkeypatch.setattr(core, "_START_WAIT_SECONDS", 10.0)  # no timing luck
    monkeypatch.setattr(core, "write_incoming", write)
    monkeypatch.setattr(core, "read_header", read_header)

    assert store(encode(ct_study().datasets[0])).result is StoreResult.STORED
    assert events == ["write", "parse"]


def test_success_comes_after_the_data_and_its_folder_are_flushed(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    flushed: set[int] = set()  # inodes
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        real_fsync(descriptor)
        flushed.add(os.fstat(descriptor).st_ino)

    monkeypatch.setattr(os, "fsync", fsync)
    outcomes = [store(encode(ds)).result for ds in ct_study(slices=3).datasets]
    assert outcomes == [StoreResult.STORED] * 3
    for instance in Instance.objects.all():
        path = storage_dir / instance.storage_path
        assert path.stat().st_ino in flushed
        assert path.parent.stat().st_ino in flushed


def test_a_failed_flush_is_a_storage_failure_and_the_resend_completes_it(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError(5, "Input/output error")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    data = encode(ct_study().datasets[0])
    with pytest.raises(StorageUnavailable) as raised:
        store(data)
    assert raised.value.transient
    # Once the disk is well again, the sender's resend completes the study.
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert store(data).result in (StoreResult.STORED, StoreResult.DUPLICATE)
    instance = Instance.objects.get()
    assert (storage_dir / instance.storage_path).read_bytes() == data
    assert not list((storage_dir / storage.INCOMING).iterdir())


@pytest.mark.parametrize(
    "transfer_syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless]
)
def test_compressed_instances_are_stored_without_decoding(
    transfer_syntax: str, storage_dir: Path
) -> None:
    dataset = ct_study().datasets[0]
    dataset.compress(transfer_syntax)
    data = encode(dataset)
    assert store(data).result is StoreResult.STORED
    instance = Instance.objects.get()
    assert instance.transfer_syntax_uid == transfer_syntax
    assert (storage_dir / instance.storage_path).read_bytes() == data


def test_stale_temporary_files_are_swept(storage_dir: Path) -> None:
    (storage_dir / storage.INCOMING).mkdir(parents=True)
    stale = storage_dir / storage.INCOMING / "abc.tmp"
    stale.write_bytes(b"x")
    assert storage.sweep_incoming(storage_dir, older_than_seconds=60, now=0) == 0
    assert stale.exists()
    later = stale.stat().st_mtime + 61
    assert storage.sweep_incoming(storage_dir, older_than_seconds=60, now=later) == 1
    assert not stale.exists()


def test_the_file_meta_written_for_a_c_store_is_valid_part_10() -> None:
    meta = part10.file_meta(
        sop_class_uid=SecondaryCaptureImageStorage,
        sop_instance_uid="1.2.3.4.5",
        transfer_syntax_uid=RLELossless,
    )
    parsed = pydicom.dcmread(pydicom.filebase.DicomBytesIO(meta))
    assert parsed.file_meta.MediaStorageSOPClassUID == SecondaryCaptureImageStorage
    assert parsed.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4.5"
    assert parsed.file_meta.TransferSyntaxUID == RLELossless
    assert part10.dataset_offset(meta) == len(meta)
    assert part10.meta_uids(meta) == (SecondaryCaptureImageStorage, "1.2.3.4.5")


# pydicom's own test files: many transfer syntaxes, vendors and malformations.


@pytest.mark.parametrize("path", pydicom_test_files(), ids=pydicom_file_name)
def test_each_pydicom_test_file_is_stored_or_refused(path: Path) -> None:
    name = pydicom_file_name(path)
    data = path.read_bytes()
    if name in PYDICOM_BROKEN:
        with pytest.raises(IngestError) as raised:
            store(data)
        assert raised.value.status == PYDICOM_BROKEN[name]
        assert not Instance.objects.exists()
    else:
        assert store(data).result is StoreResult.STORED
        dataset: Dataset = pydicom.dcmread(path, stop_before_pixels=True)
        assert Instance.objects.get().sop_instance_uid == dataset.SOPInstanceUID


def test_all_valid_pydicom_test_files_are_stored_together() -> None:
    valid = [
        p for p in pydicom_test_files() if pydicom_file_name(p) not in PYDICOM_BROKEN
    ]
    uids = set()
    for path in valid:
        outcome = store(path.read_bytes())
        # Some files are copies of others, or other versions of one instance.
        assert outcome.result is not None, path
        uids.add(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
    assert Instance.objects.count() == len(uids)
