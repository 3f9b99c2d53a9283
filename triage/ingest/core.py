"""The one ingest path, shared by the C-STORE listener and STOW-RS.

An instance is written as received (never decoded and re-encoded), flushed to
disk, recorded from its header, and only then reported as stored. On any
failure nothing stays half-recorded and no orphan file is left behind.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError

from triage import services
from triage.ingest.errors import InstanceTooLarge, StorageUnavailable, StudyMismatch
from triage.ingest.header import read_header
from triage.ingest.storage import (
    commit_file,
    relative_path,
    remove_quietly,
    write_temporary,
)
from triage.services import StoreOutcome

logger = logging.getLogger(__name__)


def store_instance(
    data: bytes, *, now: datetime, expected_study_uid: str | None = None
) -> StoreOutcome:
    """Store one DICOM Part 10 stream durably and record it.

    Args:
        data: the instance as received, file meta included.
        now: the time of receipt.
        expected_study_uid: STOW-RS to a study URL: refuse other studies.

    Raises:
        IngestError: a subclass saying why it was not stored; nothing was kept.
    """
    limit = settings.RADTRIAGE_MAX_INSTANCE_BYTES
    if len(data) > limit:
        raise InstanceTooLarge(f"instance of {len(data)} bytes exceeds {limit}")
    header = read_header(data)
    if (
        expected_study_uid is not None
        and header.study_instance_uid != expected_study_uid
    ):
        raise StudyMismatch("the instance belongs to another study than the URL")
    root: Path = settings.RADTRIAGE_STORAGE_DIR
    relative = relative_path(header)
    final = root / relative
    existed_before = final.exists()
    try:
        temporary = write_temporary(root, relative, data)
    except OSError as exc:
        logger.error("storage write failed: %s", type(exc).__name__)
        raise StorageUnavailable("the storage volume refused the write") from exc
    try:
        outcome = services.record_instance(
            header,
            storage_path=str(relative),
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            now=now,
            # Runs inside the transaction, so a file is in place only if its row is.
            place_file=lambda: commit_file(temporary, final),
        )
    except DatabaseError as exc:
        remove_quietly(temporary)
        if not existed_before:
            remove_quietly(final)
        logger.error("recording an instance failed: %s", type(exc).__name__)
        raise StorageUnavailable("the database is unavailable") from exc
    except BaseException:
        remove_quietly(temporary)
        if not existed_before:
            remove_quietly(final)
        raise
    remove_quietly(temporary)  # a duplicate leaves its temporary unused
    return outcome
