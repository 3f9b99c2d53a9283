"""Find stored files that no instance row names, and remove them.

Ingest renames a flushed file into place inside the transaction that records
it, so a crash between the rename and the commit leaves a file nobody
recorded (the sender, told nothing, sends it again and that copy is
recorded). So does a crash between a replacement's commit and the removal of
the file it replaced. Nothing else puts files there: whatever under the
study/series folders is not named by an ``Instance.storage_path`` and is older
than any ingest in flight is such a leftover.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from triage.ingest.header import is_valid_uid
from triage.models import Instance

logger = logging.getLogger(__name__)

_SUFFIX = ".dcm"


@dataclass(frozen=True, slots=True)
class OrphanFiles:
    """What one look for orphan files found.

    Attributes:
        checked: Stored files looked at.
        unrecorded: Files no instance row names, old enough to be leftovers.
        removed: Of those, how many were removed (0 on a dry run).
    """

    checked: int
    unrecorded: tuple[Path, ...]
    removed: int


def _series_folders(root: Path) -> Iterator[Path]:
    """The study/series folders ingest makes (UID-named, two levels down)."""
    for study in os.scandir(root):
        if not study.is_dir(follow_symlinks=False) or not is_valid_uid(study.name):
            continue
        for series in os.scandir(study.path):
            if series.is_dir(follow_symlinks=False) and is_valid_uid(series.name):
                yield Path(series.path)


def find_orphans(
    root: Path, *, older_than_seconds: float, now: float, remove: bool
) -> OrphanFiles:
    """Look for stored files no instance row names; remove them if asked.

    Args:
        root: The storage root (RADTRIAGE_STORAGE_DIR).
        older_than_seconds: Only files untouched this long count: a file renamed
            into place is recorded within its ingest's transaction.
        now: The current time as seconds since the epoch (``time.time()``).
        remove: Remove what was found (False: only report it).
    """
    checked = 0
    unrecorded: list[Path] = []
    removed = 0
    if not root.is_dir():
        return OrphanFiles(0, (), 0)
    for folder in _series_folders(root):
        files = {
            f"{folder.parent.name}/{folder.name}/{entry.name}": entry
            for entry in os.scandir(folder)
            if entry.is_file(follow_symlinks=False) and entry.name.endswith(_SUFFIX)
        }
        if not files:
            continue
        checked += len(files)
        recorded = set(
            Instance.objects.filter(storage_path__in=list(files)).values_list(
                "storage_path", flat=True
            )
        )
        for relative, entry in files.items():
            if relative in recorded:
                continue
            try:
                age = now - entry.stat(follow_symlinks=False).st_mtime
            except FileNotFoundError:
                continue  # removed meanwhile (a replacement's cleanup)
            if age < older_than_seconds:
                continue
            path = Path(entry.path)
            unrecorded.append(path)
            if remove:
                path.unlink(missing_ok=True)
                removed += 1
    if unrecorded:
        # Counts only: file names carry UIDs.
        logger.warning(
            "storage audit: %d of %d stored files were recorded by no instance; "
            "%d removed",
            len(unrecorded),
            checked,
            removed,
        )
    return OrphanFiles(checked, tuple(unrecorded), removed)
