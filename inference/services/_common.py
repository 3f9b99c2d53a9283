"""Small pieces the scoring services share: the reason length, the change signal."""

from __future__ import annotations

from triage.models import Study
from triage.signals import study_changed

# The longest reason stored (the columns' max_length).
REASON_MAX = 512


def announce_changed(study_id: int) -> None:
    """Tell the worklist a study changed (an on-commit callback)."""
    study_changed.send(sender=Study, study_id=study_id)
