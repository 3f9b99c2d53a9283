"""The listener's reads are bounded: by a hard cap before association, by the
maximum PDU length it offered after, and by the instance cap per message,
inflated size included (issue 13, defect 1)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from demo.synthetic import make_ct_head_study
from tests.fuzz.dicom import pdu_header, read_pdu_type, write_deflated_instance
from tests.harness.processes import free_port
from tests.triage.dicom_data import ct_study
from triage.ingest.scp import start_listener
from triage.ingest.transport import ASSOCIATION_PDU_LIMIT
from triage.models import Instance

pytestmark = pytest.mark.django_db(transaction=True)

A_ABORT = 0x07
SUCCESS = 0x0000
TOO_LARGE = 0xC001


@pytest.fixture
def start(settings: Any) -> Iterator[Callable[[], ThreadedAssociationServer]]:
    """Start the listener once the test has set what it needs."""
    servers: list[ThreadedAssociationServer] = []

    def start_now() -> ThreadedAssociationServer:
        settings.RADTRIAGE_DICOM_HOST = "127.0.0.1"
        settings.RADTRIAGE_DICOM_PORT = free_port()
        server = start_listener(block=False)
        assert server is not None
        servers.append(server)
        return server

    yield start_now
    for server in servers:
        server.shutdown()


def associate(server: ThreadedAssociationServer, *syntaxes: str) -> Association:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, list(syntaxes) or [ExplicitVRLittleEndian])
    host, port = server.server_address[:2]
    assoc = ae.associate(host, port, ae_title="RADTRIAGE")
    assert assoc.is_established
    return assoc


def echo_answers(server: ThreadedAssociationServer) -> bool:
    assoc = associate(server)
    try:
        return int(assoc.send_c_echo().Status) == SUCCESS
    finally:
        assoc.release()


@pytest.mark.parametrize(
    "declared", [ASSOCIATION_PDU_LIMIT + 1, 0x40000000, 0xFFFFFFFF]
)
def test_an_association_request_over_the_cap_is_aborted_unread(
    start: Callable[[], ThreadedAssociationServer], declared: int
) -> None:
    server = start()
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        # Six bytes, before any association: the old reader allocated it all.
        sock.sendall(pdu_header(0x01, declared) + b"\x00\x01")
        assert read_pdu_type(sock, timeout=5) == A_ABORT
    assert echo_answers(server)


def test_a_data_pdu_longer_than_the_offered_maximum_aborts(
    start: Callable[[], ThreadedAssociationServer], settings: Any
) -> None:
    settings.RADTRIAGE_DICOM_MAX_PDU = 16384
    server = start()
    assoc = associate(server)
    assert assoc.dul.socket is not None
    raw = assoc.dul.socket.socket
    assert raw is not None
    raw.sendall(pdu_header(0x04, 16385) + b"\x00" * 64)
    deadline = time.monotonic() + 5
    while not assoc.is_aborted and time.monotonic() < deadline:
        time.sleep(0.05)
    assert assoc.is_aborted
    assert echo_answers(server)


def test_data_pdus_of_exactly_the_offered_maximum_are_read(
    start: Callable[[], ThreadedAssociationServer], settings: Any
) -> None:
    settings.RADTRIAGE_DICOM_MAX_PDU = 16384
    server = start()
    # 256 x 256 x 2 bytes of pixels: eight P-DATA PDUs of 16384 bytes and more.
    dataset = make_ct_head_study(3, slices=1, size=256).datasets[0]
    assoc = associate(server)
    assert int(assoc.send_c_store(dataset).Status) == SUCCESS
    assoc.release()
    assert Instance.objects.count() == 1


def test_a_data_set_over_the_instance_cap_is_refused_and_the_association_goes_on(
    start: Callable[[], ThreadedAssociationServer], settings: Any
) -> None:
    settings.RADTRIAGE_MAX_INSTANCE_BYTES = 64 * 1024
    server = start()
    large = make_ct_head_study(4, slices=1, size=256).datasets[0]  # 128 KiB
    small = ct_study(5, slices=1).datasets[0]  # 8 KiB of pixels
    assoc = associate(server)
    statuses = [int(assoc.send_c_store(ds).Status) for ds in (large, small)]
    assert int(assoc.send_c_echo().Status) == SUCCESS
    assoc.release()
    assert statuses == [TOO_LARGE, SUCCESS]
    assert list(Instance.objects.values_list("sop_instance_uid", flat=True)) == [
        small.SOPInstanceUID
    ]


def test_a_deflate_bomb_is_refused_by_its_inflated_size(
    start: Callable[[], ThreadedAssociationServer], settings: Any, tmp_path: Path
) -> None:
    settings.RADTRIAGE_MAX_INSTANCE_BYTES = 4 * 1024 * 1024
    server = start()
    dataset = ct_study(6, slices=1).datasets[0]
    # About 70 KB on the wire, 64 MiB inflated: the cap was checked on the 70 KB.
    bomb = write_deflated_instance(
        tmp_path / "bomb.dcm", dataset, pixel_bytes=64 * 1024 * 1024
    )
    assert bomb.stat().st_size < settings.RADTRIAGE_MAX_INSTANCE_BYTES
    assoc = associate(server, DeflatedExplicitVRLittleEndian)
    status = int(assoc.send_c_store(bomb).Status)
    assoc.release()
    assert status == TOO_LARGE
    assert not Instance.objects.exists()
    assert echo_answers(server)
