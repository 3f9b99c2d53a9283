"""The DICOM Part 10 file meta group, written and skipped without pydicom.

A C-STORE carries the data set alone; storing it as a file needs the 128-byte
preamble, ``DICM`` and the file meta group in front (PS3.10 7.1). Building those
few bytes by hand costs microseconds where a pydicom round trip costs most of a
millisecond per instance.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

PREAMBLE = b"\x00" * 128 + b"DICM"
#: RadTriage's implementation class UID (PS3.7 D.3.3.2): pydicom's
#: ``generate_uid(entropy_srcs=["radtriage-implementation"])``, fixed here.
IMPLEMENTATION_CLASS_UID = (
    "1.2.826.0.1.3680043.8.498.55354960049411539266969165819990703743"
)
IMPLEMENTATION_VERSION_NAME = "RADTRIAGE_1"

# Explicit VR little endian: these VRs have a 2-byte reserved field and a
# 4-byte length, the others a 2-byte length (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR"}
    | {b"UT", b"UV"}
)


def _short(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", group, element, vr, len(value)) + value


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\x00" if len(raw) % 2 else raw


def file_meta(
    *, sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str
) -> bytes:
    """Preamble, prefix and file meta group for a data set received by C-STORE."""
    version_name = IMPLEMENTATION_VERSION_NAME.encode("ascii")
    if len(version_name) % 2:
        version_name += b" "
    body = b"".join(
        (
            struct.pack("<HH2sHI", 0x0002, 0x0001, b"OB", 0, 2) + b"\x00\x01",
            _short(0x0002, 0x0002, b"UI", _uid(sop_class_uid)),
            _short(0x0002, 0x0003, b"UI", _uid(sop_instance_uid)),
            _short(0x0002, 0x0010, b"UI", _uid(transfer_syntax_uid)),
            _short(0x0002, 0x0012, b"UI", _uid(IMPLEMENTATION_CLASS_UID)),
            _short(0x0002, 0x0013, b"SH", version_name),
        )
    )
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return PREAMBLE + group_length + body


def with_preamble(data: bytes) -> bytes:
    """A stream that starts with its file meta, given the preamble it lacks.

    PS3.10 files open with a 128-byte preamble and ``DICM``; some senders
    (dicomweb-client among them) send the meta group without them, or without
    the preamble only. Nothing of the data set changes; a stream without file
    meta is returned as it is.
    """
    if data[128:132] == b"DICM":
        return data
    if data[:4] == b"DICM":
        return PREAMBLE[:128] + data
    if data[:2] == b"\x02\x00":
        return PREAMBLE + data
    return data


def dataset_offset(data: bytes | memoryview) -> int:
    """Where the data set starts in a Part 10 stream: just past its file meta.

    A stream whose meta cannot be walked gives the offset just past ``DICM``:
    callers use this only to hash the data set, and the header reader judges
    the stream itself.
    """
    walk = _MetaWalk(data)
    for _ in walk:
        pass
    return walk.end if walk.complete else len(PREAMBLE)


def meta_transfer_syntax(data: bytes | memoryview) -> str:
    """The Transfer Syntax UID a Part 10 stream's file meta names ("" if none)."""
    for element, vr, value in _MetaWalk(data):
        if element == 0x0010 and vr == b"UI":
            return value.decode("ascii", "replace").rstrip("\x00 ")
    return ""


def meta_uids(data: bytes | memoryview) -> tuple[str, str]:
    """The SOP class and instance UIDs named by a stream's file meta, if any.

    Best effort, for reporting a refused instance by its UIDs: empty strings
    where the stream has no readable file meta.
    """
    found = {0x0002: "", 0x0003: ""}
    for element, vr, value in _MetaWalk(with_preamble(bytes(data))):
        if element in found and vr == b"UI":
            found[element] = value.decode("ascii", "replace").rstrip("\x00 ")
    return found[0x0002], found[0x0003]


class _MetaWalk:
    """Iterates the group 0002 elements (always explicit VR little endian).

    After iteration, ``complete`` says whether the group ended cleanly and
    ``end`` is the offset just past it.
    """

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = data
        self.end = len(PREAMBLE)
        self.complete = False

    def __iter__(self) -> Iterator[tuple[int, bytes, bytes]]:
        data, position, size = self.data, len(PREAMBLE), len(self.data)
        if size < position or bytes(data[128:132]) != b"DICM":
            return
        while position + 8 <= size:
            group, element = struct.unpack_from("<HH", data, position)
            if group != 0x0002:
                break
            vr = bytes(data[position + 4 : position + 6])
            if vr in _LONG_VRS:
                if position + 12 > size:
                    return
                (length,) = struct.unpack_from("<I", data, position + 8)
                start = position + 12
            else:
                (length,) = struct.unpack_from("<H", data, position + 6)
                start = position + 8
            if start + length > size:
                return
            yield element, vr, bytes(data[start : start + length])
            position = start + length
        else:
            if position != size:
                return  # a few stray bytes: not an element
        self.end = position
        self.complete = True
