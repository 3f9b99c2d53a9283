"""A study that arrives and is scored costs its worklist row few writes and
deltas: the worklist refreshes it once per transaction that changed something a
reader sees, and not at all when nothing did."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from demo.synthetic import HemorrhageType, make_ct_head_study
from inference import services, tasks
from tests.factories import entry_of, scoring_of
from tests.inference.conftest import dicom_bytes
from triage import services as triage_services
from triage.ingest.core import store_instance
from triage.models import Study
from triage.signals import study_changed
from worklist import broadcast
from worklist import services as worklist_services
from worklist.models import WorklistEntry
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

ENTRY_TABLE = WorklistEntry._meta.db_table


class Counter:
    """Writes to the worklist's table and deltas naming one study."""

    def __init__(self) -> None:
        self.deltas: list[tuple[list[Any], list[int]]] = []
        self.queries = CaptureQueriesContext(connection)
        self.since = 0

    def restart(self) -> None:
        """Count from now on."""
        self.deltas.clear()
        self.since = len(self.queries.captured_queries)

    def send(self, upserted: list[Any], removed: list[int]) -> None:
        self.deltas.append((list(upserted), list(removed)))

    def writes(self, verb: str) -> int:
        return sum(
            1
            for q in self.queries.captured_queries[self.since :]
            if q["sql"].lstrip().upper().startswith(verb)
            and f'"{ENTRY_TABLE}"' in q["sql"].split("SET")[0].split("VALUES")[0]
        )

    def deltas_of(self, study_id: int) -> int:
        return sum(
            1
            for upserted, removed in self.deltas
            if study_id in removed or any(u["id"] == study_id for u in upserted)
        )


@pytest.fixture
def counter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counted = Counter()
    monkeypatch.setattr(broadcast, "send_delta", counted.send)
    # The scoring task is run here, in the test; nothing goes to a broker.
    with mock.patch.object(tasks.score_study, "apply_async"), counted.queries:
        yield counted


def test_arriving_and_being_scored_writes_the_row_and_sends_a_delta_twice(
    counter: Counter, django_capture_on_commit_callbacks: Any
) -> None:
    synthetic = make_ct_head_study(
        14, slices=12, size=128, hemorrhage=HemorrhageType.INTRAPARENCHYMAL
    )
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for ds in synthetic.datasets:
            study_id = store_instance(dicom_bytes(ds), now=now).study_id
    with django_capture_on_commit_callbacks(execute=True):
        assert triage_services.mark_study_stable(
            study_id, now=now + timedelta(minutes=5)
        )
    assert scoring_of(study_id).ai_status == "queued"
    with django_capture_on_commit_callbacks(execute=True):
        assert services.score_study(study_id, clock=timezone.now)

    entry = entry_of(study_id)
    assert scoring_of(study_id).ai_status == "scored"
    assert entry.reading_status == ReadingStatus.READY
    assert entry.ai_flagged and entry.priority_score > 0
    # The row is made with the study, then written at stability (awaiting
    # AI, queued) and at the result (ready, the finding): not at every
    # instance, at the queueing or at the claim.
    assert counter.writes("INSERT") == 1
    assert counter.writes("UPDATE") <= 2
    assert counter.deltas_of(study_id) <= 2
    assert entry.version == counter.deltas_of(study_id) == 2


def test_nothing_visible_changed_sends_nothing(
    counter: Counter,
    django_capture_on_commit_callbacks: Any,
    make_user: Any,
) -> None:
    from triage.roles import Role

    synthetic = make_ct_head_study(15, slices=8, size=64)
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        for ds in synthetic.datasets:
            study_id = store_instance(dicom_bytes(ds), now=now).study_id
        triage_services.mark_study_stable(study_id, now=now + timedelta(minutes=5))
    version = entry_of(study_id).version
    counter.restart()

    reader = make_user(Role.RADIOLOGIST, "reader")
    with django_capture_on_commit_callbacks(execute=True):
        # Announced as changed with nothing changed; opened in the viewer
        # (recorded, but not shown in the row).
        study_changed.send(sender=Study, study_id=study_id)
        worklist_services.open_study(study_id, reader, now=timezone.now())
    assert counter.deltas == []
    assert entry_of(study_id).version == version
    assert counter.writes("UPDATE") == 1  # the first opening's time, alone

    # A visible change does go out, once.
    with django_capture_on_commit_callbacks(execute=True):
        worklist_services.claim_study(study_id, reader, now=timezone.now())
    assert counter.deltas_of(study_id) == 1
    assert entry_of(study_id).version == version + 1
