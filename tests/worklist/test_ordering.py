"""The worklist's order: the database and the engine agree, ties included."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import StudyFactory
from worklist.priority import ListPlace, rank
from worklist.queries import ORDERING, for_worklist
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


def test_the_list_is_most_urgent_first_then_longest_waiting() -> None:
    now = timezone.now()
    low = StudyFactory.create(priority_score=10, first_instance_received_at=now)
    high = StudyFactory.create(priority_score=90, first_instance_received_at=now)
    older_low = StudyFactory.create(
        priority_score=10, first_instance_received_at=now - timedelta(minutes=5)
    )
    StudyFactory.create(priority_score=99, reading_status=ReadingStatus.FINAL)
    assert list(for_worklist()) == [high, older_low, low]


def test_the_database_orders_as_the_engine_ranks() -> None:
    # Few distinct scores and arrival times, so ties on both are common.
    rng = random.Random(14)  # noqa: S311  # test data, not secrets
    now = timezone.now().replace(microsecond=0)
    places = []
    for _ in range(60):
        score = float(rng.choice([0, 12.5, 40, 40, 87.25]))
        received = now - timedelta(minutes=rng.choice([0, 3, 3, 30]))
        study = StudyFactory.create(
            priority_score=score, first_instance_received_at=received
        )
        places.append(ListPlace(study.pk, score, received))
    expected = [p.study_id for p in rank(places)]
    assert [s.pk for s in for_worklist()] == expected
    # The API's cursor pages follow the same definition.
    assert [s.pk for s in for_worklist().order_by(*ORDERING)] == expected
