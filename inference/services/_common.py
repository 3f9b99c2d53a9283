"""Small pieces the scoring services share: the reason length, the change
signal, the locked scoring row."""

from __future__ import annotations

from inference.models import StudyScoring
from triage.models import Study
from triage.signals import study_changed

# The longest reason stored (the columns' max_length).
REASON_MAX = 512


def announce_changed(study_id: int) -> None:
    """Tell the worklist a study changed (an on-commit callback)."""
    study_changed.send(sender=Study, study_id=study_id)


def lock_scoring(study_id: int) -> StudyScoring | None:
    """The study's scoring row, locked, with its study; None when it is gone.

    A study without one (a bulk load bypassed its creation) gets one.
    """
    locked = (
        StudyScoring.objects.select_for_update(of=("self",))
        .select_related("study")
        .filter(study_id=study_id)
    )
    scoring = locked.first()
    if scoring is None and Study.objects.filter(pk=study_id).exists():
        StudyScoring.objects.get_or_create(study_id=study_id)
        scoring = locked.first()
    return scoring
