"""Reading multipart/related bodies part by part."""

from __future__ import annotations

import io

import pytest

from triage.dicomweb.multipart import (
    MediaType,
    MultipartError,
    Part,
    boundary_of,
    iter_parts,
)


def body(*parts: tuple[str | None, bytes], boundary: str = "XyZ") -> bytes:
    chunks = []
    for content_type, data in parts:
        header = f"Content-Type: {content_type}\r\n" if content_type else ""
        chunks.append(f"--{boundary}\r\n{header}\r\n".encode() + data + b"\r\n")
    return b"".join(chunks) + f"--{boundary}--\r\n".encode()


class Trickle(io.BytesIO):
    """A stream that hands out a few bytes at a time, like a slow network."""

    def read(self, size: int | None = -1, /) -> bytes:
        return super().read(7)


def parts_of(
    data: bytes, *, limit: int = 1000, stream: type = io.BytesIO
) -> list[Part]:
    return list(iter_parts(stream(data), b"XyZ", max_part_bytes=limit))


def test_parts_come_out_with_their_type_and_bytes() -> None:
    payload = body(
        ("application/dicom", b"first\r\n--Xy not a boundary"),
        ("Application/DICOM; transfer-syntax=1.2.840.10008.1.2.1", b"second"),
        (None, b""),
    )
    assert parts_of(payload) == [
        Part("application/dicom", b"first\r\n--Xy not a boundary", 26),
        Part("application/dicom", b"second", 6),
        Part("", b"", 0),
    ]
    assert parts_of(payload, stream=Trickle) == parts_of(payload)


def test_a_part_over_the_limit_is_counted_but_not_kept() -> None:
    [part] = parts_of(body(("application/dicom", b"x" * 50)), limit=10)
    assert part == Part("application/dicom", None, 50)


def test_a_body_that_ends_early_is_an_error_after_the_complete_parts() -> None:
    payload = body(("application/dicom", b"one"), ("application/dicom", b"two"))
    parts = iter_parts(io.BytesIO(payload[:-20]), b"XyZ", max_part_bytes=100)
    assert next(parts).data == b"one"
    with pytest.raises(MultipartError, match="closing boundary"):
        next(parts)


def test_garbage_is_an_error() -> None:
    with pytest.raises(MultipartError):
        parts_of(b"this is not multipart at all\r\n")


def test_the_content_type_gives_the_boundary() -> None:
    media_type = MediaType.parse(
        'multipart/related; type="application/dicom"; boundary="a b:c"'
    )
    assert media_type.type == "multipart/related"
    assert media_type.parameters["type"] == "application/dicom"
    assert boundary_of(media_type) == b"a b:c"


@pytest.mark.parametrize(
    "header", ["multipart/related", "multipart/related; boundary=" + "x" * 71]
)
def test_a_missing_or_overlong_boundary_is_an_error(header: str) -> None:
    with pytest.raises(MultipartError):
        boundary_of(MediaType.parse(header))
