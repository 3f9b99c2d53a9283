"""Sending live changes to browsers from synchronous code.

Payloads carry internal IDs, versions and priority only: never names, MRNs,
accession numbers or UIDs. The browser fetches what it shows over HTTP, where
access is authorised and audited.
"""

from __future__ import annotations

from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from worklist.consumers import WORKLIST_GROUP


class StudyChanged(TypedDict):
    type: str
    study_id: int
    version: int
    priority_score: float


def send_study_changed(study_id: int, version: int, priority_score: float) -> None:
    """Tell every connected worklist that a study changed."""
    layer = get_channel_layer()
    if layer is None:
        return
    payload: StudyChanged = {
        "type": "worklist.study_changed",
        "study_id": study_id,
        "version": version,
        "priority_score": priority_score,
    }
    async_to_sync(layer.group_send)(
        WORKLIST_GROUP, {"type": "worklist.study_changed", "payload": payload}
    )
