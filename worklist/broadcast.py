"""Sending live worklist deltas to browsers from synchronous code.

Payloads carry internal IDs, versions and priority only: never names, MRNs,
accession numbers or UIDs. The browser fetches what it shows over HTTP, where
access is authorised and audited.

Changes are queued during a transaction and sent once it commits, as one delta
per transaction (a burst of changes becomes one message; a study changed twice
appears once, at its latest version). Every delta carries a sequence number from
one counter shared by all processes (Redis in production, the process in the
embedded mode) and the counter's epoch, so a reader can tell a missed delta.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import TypedDict

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

from worklist.consumers import WORKLIST_GROUP, session_group, user_group

logger = logging.getLogger(__name__)

#: Upserts per message: a refresh touching thousands of studies is split.
MAX_UPSERTS_PER_DELTA = 500
SEQUENCE_KEY = "radtriage:worklist:seq"
EPOCH_KEY = "radtriage:worklist:epoch"


class StudyUpsert(TypedDict):
    """One study to (re)show: fetch its row when ``version`` is newer."""

    id: int
    version: int
    priority_score: float


class WorklistDelta(TypedDict):
    """What changed in the worklist, in sequence."""

    type: str  # "worklist.delta"
    seq: int
    epoch: str
    upserted: list[StudyUpsert]
    removed: list[int]


class _Sequence:
    """The delta counter: Redis when configured, else this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = itertools.count(1)
        self._local_epoch = secrets.token_hex(4)
        self._client: redis.Redis | None = None

    def next(self) -> tuple[int, str]:
        url = settings.REDIS_URL
        if not url:
            with self._lock:
                return next(self._local), self._local_epoch
        with self._lock:
            if self._client is None:
                self._client = redis.Redis.from_url(url)
            client = self._client
        # A flushed Redis restarts the count: a new epoch tells readers to resync.
        client.set(EPOCH_KEY, secrets.token_hex(4), nx=True)
        pipe = client.pipeline()
        pipe.incr(SEQUENCE_KEY)
        pipe.get(EPOCH_KEY)
        seq, epoch = pipe.execute()
        return int(seq), (epoch or b"").decode()


_sequence = _Sequence()


def send_delta(upserted: list[StudyUpsert], removed: list[int]) -> WorklistDelta | None:
    """Send one delta to every connected worklist now; returns what was sent."""
    layer = get_channel_layer()
    if layer is None or not (upserted or removed):
        return None
    seq, epoch = _sequence.next()
    delta: WorklistDelta = {
        "type": "worklist.delta",
        "seq": seq,
        "epoch": epoch,
        "upserted": upserted,
        "removed": removed,
    }
    async_to_sync(layer.group_send)(
        WORKLIST_GROUP, {"type": "worklist.delta", "delta": delta}
    )
    return delta


def send_study_changed(study_id: int, version: int, priority_score: float) -> None:
    """Tell every connected worklist now that one study changed."""
    send_delta(
        [{"id": study_id, "version": version, "priority_score": priority_score}], []
    )


@dataclass
class _Batch:
    """Changes of one transaction, sent once it commits."""

    upserted: dict[int, StudyUpsert] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)
    sent: bool = False

    def flush(self) -> None:
        self.sent = True
        upserts = [u for i, u in self.upserted.items() if i not in self.removed]
        removed = sorted(self.removed)
        try:
            for start in range(0, max(len(upserts), 1), MAX_UPSERTS_PER_DELTA):
                send_delta(
                    upserts[start : start + MAX_UPSERTS_PER_DELTA],
                    removed if start == 0 else [],
                )
        except Exception:
            # Readers resync on the next delta's sequence gap; the change is saved.
            logger.exception("sending a worklist delta failed")


_batches = threading.local()


def _current_batch() -> _Batch | None:
    """This transaction's batch, or None outside a transaction."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        return None
    batch: _Batch | None = getattr(_batches, "batch", None)
    # A rolled-back transaction drops its callback with the batch in it.
    pending = batch is not None and any(
        func == batch.flush for _, func, _ in connection.run_on_commit
    )
    if batch is None or batch.sent or not pending:
        batch = _Batch()
        _batches.batch = batch
        transaction.on_commit(batch.flush)
    return batch


def queue_study_changed(study_id: int, version: int, priority_score: float) -> None:
    """Announce a changed study once the current transaction commits."""
    upsert: StudyUpsert = {
        "id": study_id,
        "version": version,
        "priority_score": priority_score,
    }
    batch = _current_batch()
    if batch is None:
        send_delta([upsert], [])
        return
    batch.upserted[study_id] = upsert
    batch.removed.discard(study_id)


def queue_study_removed(study_id: int) -> None:
    """Announce that a study left the worklist once the transaction commits."""
    batch = _current_batch()
    if batch is None:
        send_delta([], [study_id])
        return
    batch.upserted.pop(study_id, None)
    batch.removed.add(study_id)


def end_user_sessions(user_id: int) -> None:
    """Close every websocket of the user ``user_id`` (account deactivated)."""
    _close_group(user_group(user_id))


def end_session(session_key: str) -> None:
    """Close every websocket opened in the login session ``session_key``.

    Called at logout: an open board or worklist must not go on receiving
    deltas for a user who has signed out. Best effort, as a broadcast: the
    sockets also stop at their session's expiry.
    """
    _close_group(session_group(session_key))


def _close_group(group: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "session.ended"})
    except Exception:
        # Logging out must succeed even when the channel layer is down.
        logger.warning("closing websockets failed", exc_info=True)
