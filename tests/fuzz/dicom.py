"""Hostile DICOM built on purpose: deflate bombs and raw PDUs."""

from __future__ import annotations

import socket
import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.dsutils import encode

from triage.ingest.part10 import file_meta

_ZEROS = bytes(1 << 20)


def deflated_instance(dataset: Dataset, *, pixel_bytes: int) -> bytes:
    """``dataset`` in Deflated Explicit VR Little Endian, with ``pixel_bytes``
    of zero pixel data: a few hundred kilobytes standing for ``pixel_bytes``.

    Compressed piece by piece, so a bomb of gigabytes costs no memory to make.
    """
    header = Dataset()
    for element in dataset:
        if element.tag < 0x7FE00010:
            header.add(element)
    encoded = encode(header, False, True)
    assert encoded is not None
    pixel_header = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, pixel_bytes)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    pieces = [deflater.compress(encoded + pixel_header)]
    remaining = pixel_bytes
    while remaining:
        chunk = _ZEROS[: min(remaining, len(_ZEROS))]
        pieces.append(deflater.compress(chunk))
        remaining -= len(chunk)
    pieces.append(deflater.flush())
    meta = file_meta(
        sop_class_uid=str(dataset.SOPClassUID),
        sop_instance_uid=str(dataset.SOPInstanceUID),
        transfer_syntax_uid=DeflatedExplicitVRLittleEndian,
    )
    return meta + b"".join(pieces)


def write_deflated_instance(path: Path, dataset: Dataset, *, pixel_bytes: int) -> Path:
    """:func:`deflated_instance` as a file, for an SCU to send as it is."""
    path.write_bytes(deflated_instance(dataset, pixel_bytes=pixel_bytes))
    return path


def pdu_header(pdu_type: int, length: int) -> bytes:
    """The six bytes opening a PDU (PS3.8 9.3.1): type, reserved, length."""
    return struct.pack(">BBI", pdu_type, 0, length)


def read_pdu_type(sock: socket.socket, *, timeout: float) -> int | None:
    """The type of the next PDU the peer sends; None if it closes or is silent."""
    sock.settimeout(timeout)
    try:
        first = sock.recv(1)
    except (TimeoutError, ConnectionResetError):
        return None
    return first[0] if first else None
