"""Fuzzing the ingest core, briefly (``./run fuzz`` runs it for longer)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.ingest import check_ingest, ingest_inputs

pytestmark = [
    pytest.mark.django_db,
    # pydicom warns of every odd value it reads: that is the point here.
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@settings(
    max_examples=120,
    deadline=timedelta(seconds=10),  # a hang is a failure too
    derandomize=True,  # the same cases on every CI run; ./run fuzz explores
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=ingest_inputs())
def test_any_stream_is_stored_whole_or_refused_with_nothing_kept(data: bytes) -> None:
    check_ingest(data)
