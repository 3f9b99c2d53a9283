"""Durable storage of instances as received, laid out by UID.

An instance is first written to ``<root>/.incoming/``, then given its final name
``<root>/<study>/<series>/<instance>.<digest>.dcm`` (a rename, or a hard link
that fails rather than overwrite) while it is recorded; its data and its folder are then
flushed to disk while the database commits, and success waits for all three.
A crash before the success leaves at worst a file without its row or a row
whose file is missing or not whole: the sender, never told success, sends the
instance again, and that resend is checked against the recorded digest and
written again. Temporaries left by a crash are swept.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from triage.ingest.header import InstanceHeader, is_valid_uid

INCOMING = ".incoming"
_TEMPORARY_SUFFIX = ".tmp"


def relative_path(header: InstanceHeader, *, sha256: str) -> Path:
    """Where an instance lives under the storage root.

    ``study/series/instance.<digest>.dcm``: the first 16 hex digits of the data
    set's digest make each version of an instance a file of its own, so a
    replacement, or two senders of the same instance at once, never write
    over the file a row still names.
    """
    parts = (
        header.study_instance_uid,
        header.series_instance_uid,
        header.sop_instance_uid,
    )
    # The header checked these already; a UID is digits and dots, never a path.
    if not all(is_valid_uid(part) for part in parts):
        raise ValueError("refusing a storage path built from an invalid UID")
    tag = sha256[:16]
    if len(tag) != 16 or any(c not in "0123456789abcdef" for c in tag):
        raise ValueError("refusing a storage path with an odd digest")
    return Path(parts[0]) / parts[1] / f"{parts[2]}.{tag}.dcm"


def write_incoming(
    root: Path, data: bytes, *, started: Callable[[], object] | None = None
) -> Path:
    """Write ``data`` to a new temporary file under the root.

    Not yet flushed: :func:`flush_file` does that once the file has its final
    name, so that the flush overlaps the database's commit. ``started`` is
    called once the file is open, just before the write itself.
    """
    temporary = root / INCOMING / f"{secrets.token_hex(12)}{_TEMPORARY_SUFFIX}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    # The caller waits for ``started`` before it parses the header: no
    # mkdir() (and its exception when the folder exists) before every write.
    try:
        descriptor = os.open(temporary, flags, 0o666)
    except FileNotFoundError:
        temporary.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, flags, 0o666)
    try:
        try:
            if started is not None:
                started()
            remaining = memoryview(data)
            while remaining:
                remaining = remaining[os.write(descriptor, remaining) :]
        finally:
            os.close(descriptor)
    except BaseException:
        remove_quietly(temporary)  # a full disk leaves no partial file behind
        raise
    return temporary


def move_into_place(temporary: Path, root: Path, relative: Path) -> None:
    """Atomically move a temporary file to its place (replacing what is there).

    Durable only once :func:`flush_file` and :func:`sync_folder` are done.
    """
    ensure_folder(root, relative.parent)
    temporary.replace(root / relative)


def link_into_place(temporary: Path, root: Path, relative: Path) -> bool:
    """Give a temporary file its final name unless that name exists.

    Returns False, changing nothing, when the name is taken. Durable only once
    :func:`flush_file` and :func:`sync_folder` are done.
    """
    ensure_folder(root, relative.parent)
    try:
        os.link(temporary, root / relative)
    except FileExistsError:
        return False
    temporary.unlink()
    return True


def flush_file(path: Path) -> None:
    """Flush a file's data to disk."""
    _fsync(path)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a name given in it) to disk.

    Needed for every new file, not only in a new folder: each instance adds
    a name, and fsync() of a file does not make its directory entry durable
    ("an explicit fsync() on a file descriptor for the directory is also
    needed", fsync(2)). ext4 happens to commit the name with the file's
    journal transaction; other file systems need not.
    """
    _fsync(folder)


def ensure_folder(root: Path, relative: Path) -> None:
    """Create the study and series folders, each durable in its parent."""
    folder = root
    for part in relative.parts:
        child = folder / part
        if not child.is_dir():
            try:
                child.mkdir()
            except FileExistsError:
                pass  # a concurrent instance of the same study made it
            else:
                _fsync(folder)
        folder = child


def _fsync(path: Path) -> None:
    # A read-only descriptor is enough for fsync(2), on a file or a folder.
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_quietly(path: Path) -> None:
    """Remove a file if it exists; used to leave no orphan after a failure."""
    path.unlink(missing_ok=True)


def sweep_incoming(root: Path, *, older_than_seconds: float, now: float) -> int:
    """Remove temporaries left behind by a crash; returns how many.

    Args:
        root: the storage root.
        older_than_seconds: only files untouched this long (no write in flight
            takes that long), as other processes may be writing right now.
        now: the current time as seconds since the epoch (``time.time()``).
    """
    folder = root / INCOMING
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.glob(f"*{_TEMPORARY_SUFFIX}"):
        try:
            if now - path.stat().st_mtime > older_than_seconds:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
