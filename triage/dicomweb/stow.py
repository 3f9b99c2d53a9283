"""STOW-RS: store each body part through the one ingest path (PS3.18 10.5).

Each part is stored or refused on its own; the response lists both, in the
DICOM JSON model (PS3.18 F.2), with the HTTP status PS3.18 10.5.3 gives.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.db import connection, connections

from triage.dicomweb.multipart import Part
from triage.ingest import part10
from triage.ingest.core import store_instance
from triage.ingest.errors import IngestError, InstanceTooLarge, NotDicom

DICOM_MEDIA_TYPE = "application/dicom"

# DICOM JSON tags (PS3.18 F.2) of the Store Instances Response Module.
_FAILED_SOP_SEQUENCE = "00081198"
_REFERENCED_SOP_SEQUENCE = "00081199"
_FAILURE_REASON = "00081197"
_REFERENCED_SOP_CLASS_UID = "00081150"
_REFERENCED_SOP_INSTANCE_UID = "00081155"


@dataclass(slots=True)
class StowOutcome:
    """What a STOW-RS request stored and refused.

    Attributes:
        stored: (SOP class UID, SOP instance UID) of each stored part.
        failed: (SOP class UID, SOP instance UID, failure reason) of each
            refused part; UIDs are "" when the part did not name them.
        study_ids: internal IDs of the studies that received instances.
        transient_failures: how many failures a retry may cure (storage or
            database unavailable).
    """

    stored: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, int]] = field(default_factory=list)
    study_ids: set[int] = field(default_factory=set)
    transient_failures: int = 0

    @property
    def http_status(self) -> HTTPStatus:
        """200 all stored, 202 some, 409 none (503 when only a retry can help)."""
        if not self.failed:
            return HTTPStatus.OK
        if self.stored:
            return HTTPStatus.ACCEPTED
        if self.transient_failures == len(self.failed):
            return HTTPStatus.SERVICE_UNAVAILABLE
        return HTTPStatus.CONFLICT

    def response(self) -> dict[str, Any]:
        """The Store Instances Response Module as DICOM JSON."""
        body: dict[str, Any] = {}
        if self.failed:
            body[_FAILED_SOP_SEQUENCE] = _sequence(
                {
                    **_references(sop_class_uid, sop_instance_uid),
                    _FAILURE_REASON: {"vr": "US", "Value": [reason]},
                }
                for sop_class_uid, sop_instance_uid, reason in self.failed
            )
        if self.stored:
            body[_REFERENCED_SOP_SEQUENCE] = _sequence(
                _references(sop_class_uid, sop_instance_uid)
                for sop_class_uid, sop_instance_uid in self.stored
            )
        return body


def store_parts(
    parts: Iterable[Part], *, expected_study_uid: str | None, now: datetime
) -> StowOutcome:
    """Store every part of a STOW-RS request, each on its own.

    On PostgreSQL several parts are stored at once (RADTRIAGE_STOW_CONCURRENCY
    threads, each with its own connection), as several associations would be:
    each instance is still flushed and committed before it counts as stored.

    Args:
        parts: the request's body parts, as they arrive.
        expected_study_uid: the study of the request's URL, if it named one.
        now: the time of receipt.

    Returns:
        What was stored and what was refused, and why, in the parts' order.
    """
    threads = settings.RADTRIAGE_STOW_CONCURRENCY
    if threads <= 1 or connection.vendor != "postgresql" or connection.in_atomic_block:
        results = [_store_part(part, expected_study_uid, now) for part in parts]
    else:
        results = _store_concurrently(parts, expected_study_uid, now, threads)
    outcome = StowOutcome()
    for result in results:
        if isinstance(result, _Failure):
            outcome.failed.append(
                (result.sop_class_uid, result.sop_instance_uid, result.status)
            )
            outcome.transient_failures += int(result.transient)
        else:
            outcome.stored.append((result.sop_class_uid, result.sop_instance_uid))
            outcome.study_ids.add(result.study_id)
    return outcome


@dataclass(frozen=True, slots=True)
class _Stored:
    sop_class_uid: str
    sop_instance_uid: str
    study_id: int


@dataclass(frozen=True, slots=True)
class _Failure:
    sop_class_uid: str
    sop_instance_uid: str
    status: int
    transient: bool


def _store_concurrently(
    parts: Iterable[Part], expected_study_uid: str | None, now: datetime, threads: int
) -> list[_Stored | _Failure]:
    # A bounded queue: at most a few parts wait in memory while others store.
    work: queue.Queue[tuple[int, Part] | None] = queue.Queue(maxsize=threads)
    results: dict[int, _Stored | _Failure] = {}
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while (item := work.get()) is not None:
                index, part = item
                try:
                    results[index] = _store_part(part, expected_study_uid, now)
                except BaseException as exc:  # noqa: BLE001 - re-raised below
                    errors.append(exc)
        finally:
            connections.close_all()  # this thread's connection back to the pool

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    try:
        count = 0
        for count, part in enumerate(parts, start=1):
            work.put((count, part))
    finally:
        for _ in pool:
            work.put(None)
        for thread in pool:
            thread.join()
    if errors:
        raise errors[0]
    return [results[index] for index in range(1, count + 1)]


def _store_part(
    part: Part, expected_study_uid: str | None, now: datetime
) -> _Stored | _Failure:
    data = part.data
    try:
        if data is None:
            limit = settings.RADTRIAGE_MAX_INSTANCE_BYTES
            raise InstanceTooLarge(f"instance of {part.size} bytes exceeds {limit}")
        if part.content_type not in ("", DICOM_MEDIA_TYPE):
            raise NotDicom("the part is not application/dicom")
        stored = store_instance(data, now=now, expected_study_uid=expected_study_uid)
    except IngestError as exc:
        uids = part10.meta_uids(data) if data is not None else ("", "")
        return _Failure(*uids, status=exc.status, transient=exc.transient)
    return _Stored(*part10.meta_uids(data), study_id=stored.study_id)


def _references(sop_class_uid: str, sop_instance_uid: str) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if sop_class_uid:
        item[_REFERENCED_SOP_CLASS_UID] = {"vr": "UI", "Value": [sop_class_uid]}
    if sop_instance_uid:
        item[_REFERENCED_SOP_INSTANCE_UID] = {"vr": "UI", "Value": [sop_instance_uid]}
    return item


def _sequence(items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"vr": "SQ", "Value": list(items)}
