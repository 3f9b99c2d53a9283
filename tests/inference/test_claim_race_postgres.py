"""Two scoring workers claim the same study at once: exactly one scores it.

PostgreSQL only (row locks and READ COMMITTED re-checks are the point);
``tests/integration/test_suites_on_postgres.py`` runs this file there. The
second claim is made to wait on the row lock the first holds, so the race is
the one two workers really run, every time, not only when timing allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from inference import scoring_lease
from inference.services import claims
from inference.vocabulary import AIStatus
from tests.factories import StudyFactory, scoring_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row-lock races need PostgreSQL (tests/integration runs this there)",
    ),
]

WAIT_S = 20.0


def _blocked_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return bool(cursor.fetchone()[0])


def _race(study_id: int, now: datetime) -> list[claims.ClaimedStudy | None]:
    """The first claim holds its transaction open until the second waits on it."""
    first_updated, second_waits = threading.Event(), threading.Event()
    results: dict[str, claims.ClaimedStudy | None] = {}
    errors: list[BaseException] = []

    def guarded(name: str, body: Callable[[], claims.ClaimedStudy | None]) -> None:
        try:
            results[name] = body()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            errors.append(exc)
        finally:
            connections.close_all()

    def first() -> claims.ClaimedStudy | None:
        with transaction.atomic():
            claimed = claims.claim(study_id, now=now)
            scoring_lease.take(study_id, now)  # as inference.services.scoring does
            first_updated.set()
            assert second_waits.wait(WAIT_S), "the second claim never waited"
        return claimed

    def second() -> claims.ClaimedStudy | None:
        assert first_updated.wait(WAIT_S)
        with transaction.atomic():
            return claims.claim(study_id, now=now + timedelta(milliseconds=5))

    threads = [
        threading.Thread(target=guarded, args=(name, body))
        for name, body in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + WAIT_S
    while not _blocked_on_a_lock():
        assert time.monotonic() < deadline, "the second claim never blocked"
        time.sleep(0.01)
    second_waits.set()
    for thread in threads:
        thread.join(WAIT_S)
    if errors:
        raise errors[0]
    return [results["first"], results["second"]]


@pytest.mark.parametrize(
    "status", [AIStatus.QUEUED, AIStatus.PENDING], ids=["queued", "pending"]
)
def test_the_second_of_two_concurrent_claims_gets_nothing(status: AIStatus) -> None:
    now = timezone.now()
    study = StudyFactory.create(stable_at=now - timedelta(seconds=30), ai_status=status)
    first, second = _race(study.pk, now)
    assert first is not None
    assert second is None
    scoring = scoring_of(study)
    assert scoring.ai_status == AIStatus.SCORING
    assert scoring.scoring_started_at == now  # the winner's run, not overwritten


def test_a_run_whose_lease_expired_is_taken_over_by_exactly_one_worker() -> None:
    """A worker died mid-run: of two that find it, one takes it over."""
    now = timezone.now()
    started = now - scoring_lease.lease_length() - timedelta(seconds=5)
    study = StudyFactory.create(
        stable_at=started - timedelta(seconds=30),
        ai_status=AIStatus.SCORING,
        scoring_started_at=started,
    )
    scoring_lease.take(study.pk, started)  # expired by now
    first, second = _race(study.pk, now)
    assert first is not None
    assert second is None
    assert scoring_of(study).scoring_started_at == now
