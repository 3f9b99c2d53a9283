"""The DICOM listener in-process, driven by a pynetdicom SCU."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from tests.harness.processes import free_port
from tests.triage.dicom_data import ct_study, modified
from triage.ingest.scp import start_listener
from triage.models import Instance

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener(settings: Any) -> Iterator[ThreadedAssociationServer]:
    settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
    settings.RADTRIAGE_DICOM_PORT = free_port()
    server = start_listener(block=False)
    assert server is not None
    yield server
    server.shutdown()


def associate(
    server: ThreadedAssociationServer, *, ae_title: str = "MODALITY", syntax: str = ""
) -> Association:
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(Verification)
    ae.add_requested_context(
        CTImageStorage,
        [syntax] if syntax else [ExplicitVRLittleEndian, ImplicitVRLittleEndian],
    )
    host, port = server.server_address[:2]
    return ae.associate(host, port, ae_title="RADTRIAGE")


def status_of(assoc: Association, dataset: Dataset) -> int:
    status = assoc.send_c_store(dataset)
    return int(status.Status)


def test_c_echo_answers(listener: ThreadedAssociationServer) -> None:
    assoc = associate(listener)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_c_store_stores_a_study_and_refuses_bad_instances_on_the_way(
    listener: ThreadedAssociationServer,
) -> None:
    study = ct_study(slices=3)
    no_study_uid = pydicom.dcmread(
        pydicom.filebase.DicomBytesIO(modified(study.datasets[1], "StudyInstanceUID"))
    )
    assoc = associate(listener)
    statuses = [
        status_of(assoc, study.datasets[0]),
        status_of(assoc, no_study_uid),
        status_of(assoc, study.datasets[2]),
        status_of(assoc, study.datasets[0]),  # resent: a duplicate, still success
    ]
    assoc.release()

    assert statuses == [0x0000, 0xA900, 0x0000, 0x0000]
    assert set(Instance.objects.values_list("sop_instance_uid", flat=True)) == {
        study.datasets[0].SOPInstanceUID,
        study.datasets[2].SOPInstanceUID,
    }


def test_a_compressed_instance_is_stored_as_received(
    listener: ThreadedAssociationServer, storage_dir: Path
) -> None:
    dataset = ct_study(slices=1).datasets[0]
    dataset.compress(RLELossless)
    assoc = associate(listener, syntax=RLELossless)
    assert status_of(assoc, dataset) == 0x0000
    assoc.release()
    instance = Instance.objects.get()
    stored = pydicom.dcmread(storage_dir / instance.storage_path)
    assert stored.file_meta.TransferSyntaxUID == RLELossless
    assert stored.PixelData == dataset.PixelData  # the fragments, not re-encoded


def test_the_listener_outlives_garbage_on_its_port(
    listener: ThreadedAssociationServer,
) -> None:
    host, port = listener.server_address[:2]
    for garbage in (
        b"\x00" * 10,
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x01\x00" + b"\xff" * 64,
    ):
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(garbage)
            sock.settimeout(0.5)
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                sock.recv(1024)  # an abort, or nothing: either way, no crash
    assoc = associate(listener)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()


def test_an_aborted_association_leaves_the_listener_serving(
    listener: ThreadedAssociationServer,
) -> None:
    study = ct_study(slices=2)
    first = associate(listener)
    assert status_of(first, study.datasets[0]) == 0x0000
    first.abort()

    second = associate(listener)
    assert status_of(second, study.datasets[1]) == 0x0000
    assert second.send_c_echo().Status == 0x0000
    second.release()
    assert second.is_released
    assert Instance.objects.count() == 2


def test_only_allowed_calling_ae_titles_may_associate(
    settings: Any,
) -> None:
    settings.RADTRIAGE_DICOM_CALLING_AE_ALLOWLIST = ["CT_SCANNER_1"]
    settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
    settings.RADTRIAGE_DICOM_PORT = free_port()
    server = start_listener(block=False)
    assert server is not None
    try:
        stranger = associate(server, ae_title="STRANGER")
        assert stranger.is_rejected
        scanner = associate(server, ae_title="CT_SCANNER_1")
        assert scanner.is_established
        scanner.release()
    finally:
        server.shutdown()


def test_associations_beyond_the_limit_are_rejected(settings: Any) -> None:
    settings.RADTRIAGE_DICOM_MAX_ASSOCIATIONS = 1
    settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
    settings.RADTRIAGE_DICOM_PORT = free_port()
    server = start_listener(block=False)
    assert server is not None
    try:
        first = associate(server)
        assert first.is_established
        second = associate(server)
        assert second.is_rejected
        first.release()
    finally:
        server.shutdown()
