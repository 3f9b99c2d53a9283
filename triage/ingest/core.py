"""The one ingest path, shared by the C-STORE listener and STOW-RS.

An instance is written as received (never decoded and re-encoded), flushed to
disk, recorded from its header, and only then reported as stored. On any
failure nothing stays half-recorded and no orphan file is left behind.

The slow parts overlap: while this thread hashes the data set, parses the
header and talks to the database, a small I/O pool writes and fsyncs the file
(hashing, writing and fsync release the GIL). The file is renamed into place
inside the transaction, so success still means: on disk, flushed, and
committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)

from triage import services
from triage.ingest import part10
from triage.ingest.errors import (
    InstanceTooLarge,
    OutOfMemory,
    StorageUnavailable,
    StudyMismatch,
    UnrecordableInstance,
)
from triage.ingest.header import InstanceHeader, read_header
from triage.ingest.storage import (
    flush_file,
    link_into_place,
    move_into_place,
    relative_path,
    remove_quietly,
    sync_folder,
    write_incoming,
)
from triage.services import StoreOutcome, StoreResult

logger = logging.getLogger(__name__)

_IO_THREADS = 8
# How long a store waits for its write to begin before parsing.
_START_WAIT_SECONDS = 0.002
_pool_lock = threading.Lock()
_pool: tuple[int, ThreadPoolExecutor] | None = None


def store_instance(
    data: bytes, *, now: datetime, expected_study_uid: str | None = None
) -> StoreOutcome:
    """Store one DICOM Part 10 stream (file meta included) durably and record it.

    Args:
        data: the instance as received, file meta included.
        now: the time of receipt.
        expected_study_uid: STOW-RS to a study URL: refuse other studies.

    Raises:
        IngestError: a subclass saying why it was not stored; nothing was kept.
    """
    _check_size(len(data))
    data = part10.with_preamble(data)
    return _store(data, part10.dataset_offset(data), now, expected_study_uid)


def store_dataset(
    dataset: bytes | memoryview,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    now: datetime,
) -> StoreOutcome:
    """Store a data set received by C-STORE, adding the file meta in front.

    Args:
        dataset: the data set as received, in ``transfer_syntax_uid``.
        sop_class_uid: the request's Affected SOP Class UID.
        sop_instance_uid: the request's Affected SOP Instance UID.
        transfer_syntax_uid: the presentation context's transfer syntax.
        now: the time of receipt.

    Raises:
        IngestError: a subclass saying why it was not stored; nothing was kept.
    """
    _check_size(len(dataset))
    meta = part10.file_meta(
        sop_class_uid=sop_class_uid,
        sop_instance_uid=sop_instance_uid,
        transfer_syntax_uid=transfer_syntax_uid,
    )
    return _store(meta + dataset, len(meta), now, None)


def _check_size(size: int) -> None:
    limit = settings.RADTRIAGE_MAX_INSTANCE_BYTES
    if size > limit:
        raise InstanceTooLarge(f"instance of {size} bytes exceeds {limit}")


def _store(
    data: bytes, dataset_offset: int, now: datetime, expected_study_uid: str | None
) -> StoreOutcome:
    root: Path = settings.RADTRIAGE_STORAGE_DIR
    pool = _io_pool()
    write_started = threading.Event()
    written = pool.submit(write_incoming, root, data, started=write_started.set)
    placement: _Placement | None = None
    try:
        hash_started = threading.Event()
        hashed = pool.submit(_sha256, data, dataset_offset, started=hash_started.set)
        # The header parse is Python and holds the GIL: a worker not yet inside
        # its write or hash (both release the GIL) would wait for the whole
        # parse (or CPython's 5 ms switch interval), serialising what should
        # overlap. Bounded: a busy pool only costs the overlap.
        write_started.wait(_START_WAIT_SECONDS)
        hash_started.wait(_START_WAIT_SECONDS)
        header = read_header(
            data, max_inflated_bytes=settings.RADTRIAGE_MAX_INSTANCE_BYTES
        )
        sha256 = hashed.result()
        if (
            expected_study_uid is not None
            and header.study_instance_uid != expected_study_uid
        ):
            raise StudyMismatch("the instance belongs to another study than the URL")
        relative = relative_path(header, sha256=sha256)
        placement = _Placement(root, relative, pool, written)
        reused = connection.connection is not None  # opened before this instance
        try:
            outcome = _record_fast_or_general(header, placement, len(data), sha256, now)
        except (OperationalError, InterfaceError):
            # A pooled connection dies with its server (a PostgreSQL restart)
            # and is found dead only when used: once more on a fresh one. Not
            # when the connection was new (the database is down) or answers.
            if not reused or connection.in_atomic_block or connection.is_usable():
                raise
            logger.warning("the database connection was lost; retrying on a new one")
            connection.close()
            outcome = _record(header, placement, len(data), sha256, now)
    except BaseException as exc:
        if placement is not None:
            placement.undo()
        else:
            _discard(written)
        if isinstance(exc, DataError | IntegrityError):
            # A value the database cannot hold (or a constraint it breaks):
            # the same bytes would fail again, so no "retry" status.
            logger.error("the database refused an instance: %s", type(exc).__name__)
            raise UnrecordableInstance(
                "the database refused a value of the instance"
            ) from exc
        if isinstance(exc, DatabaseError):
            logger.error("recording an instance failed: %s", type(exc).__name__)
            raise StorageUnavailable("the database is unavailable") from exc
        if isinstance(exc, OSError):
            logger.error("storage write failed: %s", type(exc).__name__)
            raise StorageUnavailable("the storage volume refused the write") from exc
        if isinstance(exc, MemoryError):
            # A permanent refusal would make the sender drop a sound instance.
            logger.error("ran out of memory storing an instance of %d bytes", len(data))
            raise OutOfMemory("the server ran out of memory") from exc
        raise
    if outcome.result is StoreResult.DUPLICATE and not placement.adopted:
        placement.undo()  # a file placed on the way is not needed after all
    _discard(written)
    try:
        placement.wait_until_durable()
    except OSError as exc:
        # Recorded, but its name may not be on disk: say so, and the resend
        # finds the file missing and writes it again.
        logger.error("storage flush failed: %s", type(exc).__name__)
        raise StorageUnavailable("the storage volume refused the write") from exc
    superseded = outcome.replaced_storage_path
    if superseded and superseded != str(relative):
        transaction.on_commit(partial(_remove_superseded, root, superseded))
    return outcome


def _record_fast_or_general(
    header: InstanceHeader,
    placement: _Placement,
    size: int,
    sha256: str,
    now: datetime,
) -> StoreOutcome:
    if services.can_record_next_instance() and placement.place_if_new():
        outcome = services.record_next_instance(
            header,
            storage_path=str(placement.relative),
            size_bytes=size,
            sha256=sha256,
            now=now,
        )
        if outcome is not None:
            return outcome
    return _record(header, placement, size, sha256, now)


def _remove_superseded(root: Path, storage_path: str) -> None:
    # The same version may have been stored again since: keep a named file.
    if not services.is_storage_path_recorded(storage_path):
        remove_quietly(root / storage_path)


class _Placement:
    """A received file's way from the temporary folder to its final place.

    Once it has its final name, its data and its folder are flushed in the I/O
    pool while the database commits; success waits for both flushes.
    """

    def __init__(
        self,
        root: Path,
        relative: Path,
        pool: ThreadPoolExecutor,
        written: Future[Path],
    ) -> None:
        self.root = root
        self.relative = relative
        self.final = root / relative
        self.existed_before = self.final.exists()
        self.pool = pool
        self.written = written
        self.placed = False  # the file may be at its final path, put there by us
        self.inode = 0  # ours, as long as the final path holds this inode
        self.adopted = False  # a duplicate whose missing file this one replaced
        self.flushed: list[Future[None]] = []

    def place_if_new(self) -> bool:
        """Give the file its final name unless that name exists (hard link)."""
        temporary = self.written.result()
        self.inode = temporary.stat().st_ino
        if not link_into_place(temporary, self.root, self.relative):
            return False
        self.placed = True
        self._flush()
        return True

    def place(self) -> None:
        """Move the file to its final name (under the study's lock)."""
        if self.placed:
            return
        temporary = self.written.result()
        self.inode = temporary.stat().st_ino
        self.placed = True  # from here on, the file may be at its final place
        move_into_place(temporary, self.root, self.relative)
        self._flush()

    def holds(self, relative: str) -> bool:
        """Whether ``relative`` is where this attempt put its own file."""
        return self.placed and relative == str(self.relative) and self._ours()

    def _ours(self) -> bool:
        try:
            return self.final.stat().st_ino == self.inode
        except OSError:
            return False

    def _flush(self) -> None:
        self.flushed = [self.pool.submit(_flush_file_then_folder, self.final)]

    def wait_until_durable(self) -> None:
        for future in self.flushed:
            future.result()

    def undo(self) -> None:
        """Remove what this attempt put in place; used when it is not kept.

        Only our own file: a concurrent sender of the same instance may have
        put its file, now recorded, at the same name.
        """
        for future in self.flushed:
            future.exception()  # let the flushes finish before removing
        if self.placed and not self.existed_before and self._ours():
            remove_quietly(self.final)
        self.placed = False
        _discard(self.written)


def _discard(written: Future[Path]) -> None:
    """Remove the temporary file, if it is still there, once written."""
    if written.exception() is None:
        remove_quietly(written.result())


def _record(
    header: InstanceHeader,
    placement: _Placement,
    size: int,
    sha256: str,
    now: datetime,
) -> StoreOutcome:
    root: Path = settings.RADTRIAGE_STORAGE_DIR

    def file_intact(storage_path: str) -> bool:
        # A crash between the commit and the flushes can leave a recorded file
        # missing or not whole: a resend is a duplicate only if it is intact.
        if placement.holds(storage_path):
            # This resend just put the missing file back under its name: keep it.
            placement.adopted = True
            return True
        try:
            stored = (root / storage_path).read_bytes() if storage_path else b""
        except OSError:
            return False
        return _sha256(stored, part10.dataset_offset(stored)) == sha256

    # Two senders racing with the same new instance: the loser's insert hits
    # the unique constraint; its second try finds the winner's row.
    for attempt in (1, 2):
        try:
            return services.record_instance(
                header,
                storage_path=str(placement.relative),
                size_bytes=size,
                sha256=sha256,
                now=now,
                place_file=placement.place,
                file_intact=file_intact,
            )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _flush_file_then_folder(path: Path) -> None:
    # One after the other: flushing the file commits the file system's journal
    # (ext4: with the new name in it), so the folder's flush after it finds
    # little left to write; side by side, the two flushes and the database's
    # commit all wait for the disk at once.
    flush_file(path)
    sync_folder(path.parent)


def _sha256(
    data: bytes, offset: int, *, started: Callable[[], object] | None = None
) -> str:
    # The data set only: the same instance sent by C-STORE and by STOW-RS
    # (different file meta) is the same instance.
    view = memoryview(data)[offset:]
    if started is not None:
        started()
    return hashlib.sha256(view).hexdigest()


def _io_pool() -> ThreadPoolExecutor:
    """The process's hashing and writing threads (made again after a fork)."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(_IO_THREADS, "dicom-io"))
        return _pool[1]


__all__ = ["StoreOutcome", "StoreResult", "store_dataset", "store_instance"]
