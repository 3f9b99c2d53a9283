"""Durable storage of instances as received, laid out by UID."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from triage.ingest.header import InstanceHeader, is_valid_uid


def relative_path(header: InstanceHeader) -> Path:
    """Where an instance lives under the storage root: study/series/instance."""
    parts = (
        header.study_instance_uid,
        header.series_instance_uid,
        header.sop_instance_uid,
    )
    # The header checked these already; a UID is digits and dots, never a path.
    if not all(is_valid_uid(part) for part in parts):
        raise ValueError("refusing a storage path built from an invalid UID")
    return Path(parts[0]) / parts[1] / f"{parts[2]}.dcm"


def write_temporary(root: Path, relative: Path, data: bytes) -> Path:
    """Write ``data`` beside its final place and flush it to disk.

    Returns the temporary file; :func:`commit_file` moves it into place.
    """
    folder = root / relative.parent
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{relative.name}.{secrets.token_hex(6)}.tmp"
    with temporary.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return temporary


def commit_file(temporary: Path, final: Path) -> None:
    """Atomically move a flushed temporary file into place, durably."""
    temporary.replace(final)
    # The rename is only durable once the folder's entry is on disk too.
    folder_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(folder_fd)
    finally:
        os.close(folder_fd)


def remove_quietly(path: Path) -> None:
    """Remove a file if it exists; used to leave no orphan after a failure."""
    path.unlink(missing_ok=True)
