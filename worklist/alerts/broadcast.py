"""Sending live alert deltas to boards, once the transaction has committed.

A delta names one alert by internal ID with its version and status: no names,
MRNs, accession numbers or UIDs. The board fetches the alert card over HTTP.
Deltas carry a per-process sequence with an epoch, so a board that missed one
(or met another web process) refetches its list.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
from functools import partial
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

ALERTS_GROUP = "alerts"

logger = logging.getLogger(__name__)


class AlertDelta(TypedDict):
    """One alert changed: fetch its card when ``version`` is newer."""

    type: str  # "alerts.delta"
    seq: int
    epoch: str
    id: int
    study_id: int
    version: int
    status: str
    escalated: bool


_lock = threading.Lock()
_counter = itertools.count(1)
_epoch = secrets.token_hex(4)


def send_alert_changed(
    alert_id: int, study_id: int, version: int, status: str, escalated: bool
) -> AlertDelta | None:
    """Send one alert delta to every connected board now."""
    layer = get_channel_layer()
    if layer is None:
        return None
    with _lock:
        seq = next(_counter)
    delta: AlertDelta = {
        "type": "alerts.delta",
        "seq": seq,
        "epoch": _epoch,
        "id": alert_id,
        "study_id": study_id,
        "version": version,
        "status": status,
        "escalated": escalated,
    }
    try:
        async_to_sync(layer.group_send)(
            ALERTS_GROUP, {"type": "alerts.delta", "delta": delta}
        )
    except Exception:
        # Boards resync on the next sequence gap and poll while disconnected.
        logger.exception("sending an alert delta failed alert_id=%s", alert_id)
    return delta


def queue_alert_changed(
    alert_id: int, study_id: int, version: int, status: str, escalated: bool
) -> None:
    """Announce a changed alert once the current transaction commits."""
    transaction.on_commit(
        partial(send_alert_changed, alert_id, study_id, version, status, escalated)
    )
