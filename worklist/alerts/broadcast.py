"""Sending live alert deltas to boards, once the transaction has committed.

A delta names one alert by internal ID with its version and status: no names,
MRNs, accession numbers or UIDs. The board fetches the alert card over HTTP.
Deltas are numbered by the worklist's ``Broadcaster`` on a sequence of their
own, shared by all web and worker processes through Redis in production, so a
board that missed one (or whose counter restarted) refetches its list.
"""

from __future__ import annotations

from functools import partial
from typing import TypedDict

from django.db import transaction

from worklist.broadcast import Broadcaster

ALERTS_GROUP = "alerts"
SEQUENCE_KEY = "radtriage:alerts:seq"
EPOCH_KEY = "radtriage:alerts:epoch"


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


alert_deltas = Broadcaster(
    group=ALERTS_GROUP,
    event_type="alerts.delta",
    seq_key=SEQUENCE_KEY,
    epoch_key=EPOCH_KEY,
)


def send_alert_changed(
    alert_id: int, study_id: int, version: int, status: str, escalated: bool
) -> AlertDelta | None:
    """Send one alert delta to every connected board now; returns what was sent."""

    def build(seq: int, epoch: str) -> AlertDelta:
        return {
            "type": "alerts.delta",
            "seq": seq,
            "epoch": epoch,
            "id": alert_id,
            "study_id": study_id,
            "version": version,
            "status": status,
            "escalated": escalated,
        }

    # Boards resync on the next sequence gap and poll while disconnected.
    return alert_deltas.send(build, ref=f"alert_id={alert_id}")


def queue_alert_changed(
    alert_id: int, study_id: int, version: int, status: str, escalated: bool
) -> None:
    """Announce a changed alert once the current transaction commits."""
    transaction.on_commit(
        partial(send_alert_changed, alert_id, study_id, version, status, escalated)
    )
