"""The worklist's own vocabulary: where a study stands in reading.

Plain Python, like ``triage.vocabulary``: the model's ``choices`` and the
services use the same members.
"""

from __future__ import annotations

from triage.vocabulary import LabelledEnum


class ReadingStatus(LabelledEnum):
    """Where a study stands in reading; decided by the worklist alone."""

    AWAITING_IMAGES = "awaiting_images"
    AWAITING_AI = "awaiting_ai", "Awaiting AI"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    PRELIMINARY = "preliminary"
    FINAL = "final"
    # The order was cancelled (ORC-1 CA/DC, FHIR revoked): off the list, the
    # images kept; the reason is the order's (``study.order.cancel_reason``).
    CANCELLED = "cancelled"


#: Reading states that are not on the worklist: reported, or order cancelled.
OFF_THE_LIST = frozenset({ReadingStatus.FINAL, ReadingStatus.CANCELLED})
