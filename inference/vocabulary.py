"""The scoring layer's own vocabulary: where a study stands in AI screening.

Plain Python, like ``triage.vocabulary``: the model's ``choices``, the services
and the worklist's rows use the same members.
"""

from __future__ import annotations

from triage.vocabulary import LabelledEnum


class AIStatus(LabelledEnum):
    """Where a study stands in AI screening; always shown, never silent."""

    PENDING = "pending"
    QUEUED = "queued"
    SCORING = "scoring"
    SCORED = "scored"
    NOT_APPLICABLE = "not_applicable"
    FAILED = "failed"


class ReportLabel(LabelledEnum):
    """What the radiologist's report says of a finding (the monitoring's truth)."""

    POSITIVE = "positive"
    NEGATIVE = "negative"
    UNCERTAIN = "uncertain"
    NOT_MENTIONED = "not_mentioned", "Not mentioned"
