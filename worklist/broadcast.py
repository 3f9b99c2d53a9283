"""Sending live deltas to browsers from synchronous code: the one broadcaster.

Payloads carry internal IDs, versions and priority only: never names, MRNs,
accession numbers or UIDs. The browser fetches what it shows over HTTP, where
access is authorised and audited.

A ``Broadcaster`` sends one kind of delta to one channel-layer group, numbered
by one counter shared by all processes (Redis in production, the process in the
embedded mode) and stamped with the counter's epoch, so a reader can tell a
missed delta or a restarted counter and resync. The worklist and the alert
board (``worklist.alerts.broadcast``) each have one.

Worklist changes are queued during a transaction and sent once it commits, as
one delta per transaction (a burst of changes becomes one message; a study
changed twice appears once, at its latest version).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypedDict, TypeVar

import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from redis.commands.core import Script

from radtriage.db import OnCommitBatch
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


# One round trip, atomic against a concurrent FLUSHDB or eviction. A counter that
# starts again at 1 (or a lost epoch) gets a new epoch, so readers resync rather
# than drop the new deltas as older than the last they saw.
_NEXT_SEQ_SCRIPT = """
local seq = redis.call('INCR', KEYS[1])
local epoch = redis.call('GET', KEYS[2])
if seq == 1 or not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
end
return {seq, epoch}
"""
# A broadcast is best effort and runs in the commit path of a request or task:
# an unreachable Redis must cost seconds at most, not hang it.
_REDIS_TIMEOUT_S = 5.0

_Delta = TypeVar("_Delta")


def _new_epoch() -> str:
    return secrets.token_hex(4)


class Broadcaster:
    """Sends one kind of delta to one group, in one numbered sequence.

    Args:
        group: The channel-layer group the deltas go to.
        event_type: The consumer handler's event type (``"worklist.delta"``).
        seq_key: The Redis key of the shared counter.
        epoch_key: The Redis key of the counter's epoch.
    """

    def __init__(
        self, *, group: str, event_type: str, seq_key: str, epoch_key: str
    ) -> None:
        self.group = group
        self.event_type = event_type
        self.seq_key = seq_key
        self.epoch_key = epoch_key
        self._lock = threading.Lock()
        # The embedded mode (no REDIS_URL) has one process, so it counts here.
        self._local = itertools.count(1)
        self._local_epoch = _new_epoch()
        self._redis: tuple[str, redis.Redis, Script] | None = None

    def next_seq(self) -> tuple[int, str]:
        """The next sequence number and its epoch: Redis when configured."""
        url: str = settings.REDIS_URL
        if not url:
            with self._lock:
                return next(self._local), self._local_epoch
        script = self._script(url)
        seq, epoch = script(keys=[self.seq_key, self.epoch_key], args=[_new_epoch()])
        return int(seq), epoch.decode() if isinstance(epoch, bytes) else str(epoch)

    def send(
        self, build: Callable[[int, str], _Delta], *, ref: str = ""
    ) -> _Delta | None:
        """Number the delta ``build(seq, epoch)`` and send it to the group now.

        Returns what was sent, or None without a channel layer or when sending
        failed. A failure is logged, never raised: the change it announces is
        saved, and readers resync at the gap a numbered, unsent delta leaves,
        or on reconnecting when Redis (counter and channel layer) is down.
        ``ref`` names what changed by internal ID for the log (``"alert_id=5"``).
        """
        layer = get_channel_layer()
        if layer is None:
            return None
        try:
            delta = build(*self.next_seq())
            async_to_sync(layer.group_send)(
                self.group, {"type": self.event_type, "delta": delta}
            )
        except Exception:
            logger.exception("sending %s failed %s", self.event_type, ref)
            return None
        return delta

    def _script(self, url: str) -> Script:
        with self._lock:
            # Settings can change the URL (tests): one client per URL in use.
            if self._redis is None or self._redis[0] != url:
                client = redis.Redis.from_url(
                    url,
                    socket_timeout=_REDIS_TIMEOUT_S,
                    socket_connect_timeout=_REDIS_TIMEOUT_S,
                )
                self._redis = (url, client, client.register_script(_NEXT_SEQ_SCRIPT))
            return self._redis[2]


worklist_deltas = Broadcaster(
    group=WORKLIST_GROUP,
    event_type="worklist.delta",
    seq_key=SEQUENCE_KEY,
    epoch_key=EPOCH_KEY,
)


def send_delta(upserted: list[StudyUpsert], removed: list[int]) -> WorklistDelta | None:
    """Send one delta to every connected worklist now; returns what was sent."""
    if not (upserted or removed):
        return None

    def build(seq: int, epoch: str) -> WorklistDelta:
        return {
            "type": "worklist.delta",
            "seq": seq,
            "epoch": epoch,
            "upserted": upserted,
            "removed": removed,
        }

    return worklist_deltas.send(build)


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

    def flush(self) -> None:
        upserts = [u for i, u in self.upserted.items() if i not in self.removed]
        removed = sorted(self.removed)
        # A part that fails is logged by the broadcaster; the rest still go,
        # and readers resync at the gap it leaves.
        for start in range(0, max(len(upserts), 1), MAX_UPSERTS_PER_DELTA):
            send_delta(
                upserts[start : start + MAX_UPSERTS_PER_DELTA],
                removed if start == 0 else [],
            )


_batches = OnCommitBatch(_Batch, _Batch.flush)


def _current_batch() -> _Batch | None:
    """This transaction's batch, or None outside a transaction."""
    return _batches.current()


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
