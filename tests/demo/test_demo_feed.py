"""The demo feed: a fresh synthetic study each time, through the ingest path."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.utils import timezone

from demo.feed import feed_demo, next_feed_case
from demo.seed import DEMO_CASES, seed_case
from tests.factories import entry_of
from triage.models import Study


def test_feed_cases_cycle_through_the_demo_with_fresh_seeds() -> None:
    first, second = next_feed_case(0), next_feed_case(len(DEMO_CASES))
    assert first.kind == second.kind == DEMO_CASES[0].kind
    assert first.seed != DEMO_CASES[0].seed


@pytest.mark.django_db
def test_a_feed_case_arrives_scored_for_priority(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        study_id = seed_case(next_feed_case(1), slices=2, now=timezone.now())
    study = Study.objects.get(pk=study_id)
    assert study.instance_count == 2
    assert entry_of(study).priority_components  # re-scored with its order context
    assert entry_of(study).priority_score > 0


def test_feed_stops_when_told() -> None:
    stop = threading.Event()
    stop.set()
    # Set before the first interval ends: returns without sending anything.
    feed_demo(stop, interval_seconds=60, slices=2)
