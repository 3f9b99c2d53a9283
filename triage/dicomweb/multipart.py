"""Reading a ``multipart/related`` request body part by part (PS3.18 8.6.1.2).

The body is read in chunks and parsed as it arrives (python-multipart, the
parser Starlette uses), so memory holds one instance at a time, never the whole
study. A part larger than the instance cap is skipped, not buffered.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from django.utils.http import parse_header_parameters
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

CHUNK_BYTES = 1 << 20
_MAX_BOUNDARY = 70  # RFC 2046 5.1.1


class MultipartError(ValueError):
    """The body is not a well-formed multipart message."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class MediaType:
    """A Content-Type header: the media type and its parameters, lower-cased."""

    type: str
    parameters: dict[str, str]

    @classmethod
    def parse(cls, header: str) -> MediaType:
        """Parse ``type/subtype; name=value; ...`` (quoted values allowed)."""
        value, parameters = parse_header_parameters(header)
        return cls(
            value.strip().lower(),
            {name.lower(): param for name, param in parameters.items()},
        )


@dataclass(frozen=True, slots=True)
class Part:
    """One body part.

    Attributes:
        content_type: the part's media type (lower case), "" when not given.
        data: the part's bytes, or None when it was larger than the cap.
        size: the part's size in bytes.
    """

    content_type: str
    data: bytes | None
    size: int


def boundary_of(media_type: MediaType) -> bytes:
    """The boundary parameter of a multipart media type.

    Raises:
        MultipartError: it is missing or not a valid boundary.
    """
    boundary = media_type.parameters.get("boundary", "")
    if not 0 < len(boundary) <= _MAX_BOUNDARY:
        raise MultipartError("the Content-Type has no valid boundary parameter")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError as exc:
        raise MultipartError("the boundary is not ASCII") from exc


def iter_parts(
    stream: Readable, boundary: bytes, *, max_part_bytes: int
) -> Iterator[Part]:
    """Yield the parts of a multipart body as each one is complete.

    Args:
        stream: the request body.
        boundary: the Content-Type's boundary parameter.
        max_part_bytes: parts larger than this are reported without their data.

    Raises:
        MultipartError: the body breaks the multipart syntax or ends early; the
            parts before the break have been yielded.
    """
    reader = _PartReader(max_part_bytes)
    parser = MultipartParser(boundary, reader.callbacks())
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise MultipartError(f"malformed multipart body: {exc}") from exc
        yield from reader.take_completed()
        if reader.ended:
            break
    parser.finalize()
    if not reader.ended:
        raise MultipartError("the body ends before the closing boundary")


class _PartReader:
    """Collects the parser's callbacks into :class:`Part` values."""

    def __init__(self, max_part_bytes: int) -> None:
        self.max_part_bytes = max_part_bytes
        self.ended = False
        self._completed: list[Part] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._field = bytearray()
        self._value = bytearray()
        self._content_type = ""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_part_data": self._data,
            "on_part_end": self._end,
            "on_end": self._finish,
        }

    def take_completed(self) -> list[Part]:
        completed, self._completed = self._completed, []
        return completed

    def _begin(self) -> None:
        self._chunks, self._size, self._content_type = [], 0, ""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.strip().lower() == b"content-type":
            text = self._value.decode("latin-1")
            self._content_type = MediaType.parse(text).type
        self._field.clear()
        self._value.clear()

    def _data(self, data: bytes, start: int, end: int) -> None:
        self._size += end - start
        if self._size <= self.max_part_bytes:
            self._chunks.append(data[start:end])
        else:
            self._chunks.clear()  # too large: count it, keep nothing

    def _end(self) -> None:
        data = b"".join(self._chunks) if self._size <= self.max_part_bytes else None
        self._completed.append(Part(self._content_type, data, self._size))
        self._chunks = []

    def _finish(self) -> None:
        self.ended = True
