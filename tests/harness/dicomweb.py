"""Talking DICOMweb as a client does: the STOW-RS request body."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def stow_body(files: Iterable[Path], boundary: str) -> bytes:
    """A multipart/related body of ``application/dicom`` parts, one per file."""
    return (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + path.read_bytes()
            + b"\r\n"
            for path in files
        )
        + f"--{boundary}--\r\n".encode()
    )
