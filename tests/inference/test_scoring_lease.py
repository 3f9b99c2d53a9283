"""A scoring run holds a lease renewed while it goes on: a study whose worker
died is claimed again within seconds, never twice while its run is alive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest import mock

import pytest
from django.utils import timezone

from demo.synthetic import make_ct_head_study
from inference import scoring_lease, services, tasks
from inference.models import ScoringLease, StudyScoring
from inference.services import scoring
from inference.vocabulary import AIStatus
from tests.factories import scoring_of
from triage.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_ct(store_study: Callable[..., Study]) -> Study:
    return store_study(make_ct_head_study(41, slices=4, size=64))


def test_a_claim_takes_the_lease_of_its_run(small_ct: Study, settings: Any) -> None:
    settings.RADTRIAGE_SCORING_LEASE_SECONDS = 15.0
    now = timezone.now()
    assert scoring._claim(small_ct.pk, now) is not None
    lease = ScoringLease.objects.get(study=small_ct)
    assert lease.started_at == now
    assert lease.expires_at == now + timedelta(seconds=15)


def test_a_run_whose_lease_expired_is_claimed_again_in_seconds(
    small_ct: Study, settings: Any
) -> None:
    settings.RADTRIAGE_SCORING_LEASE_SECONDS = 15.0
    now = timezone.now()
    assert scoring._claim(small_ct.pk, now) is not None
    # Alive (renewed or not yet expired): never claimed twice.
    assert scoring._claim(small_ct.pk, now + timedelta(seconds=14)) is None
    assert scoring_lease.renew(small_ct.pk, now, now=now + timedelta(seconds=10))
    assert scoring._claim(small_ct.pk, now + timedelta(seconds=24)) is None
    # Its worker died: no renewal, and 16 s later (not the time limit) it is
    # claimed again, with a lease of the new run's.
    again = now + timedelta(seconds=26)
    assert scoring._claim(small_ct.pk, again) is not None
    assert ScoringLease.objects.get(study=small_ct).started_at == again
    # The dead run's renewals no longer touch it.
    assert not scoring_lease.renew(small_ct.pk, now, now=again)


def test_the_reclaim_sweep_queues_studies_whose_worker_died(
    store_study: Callable[..., Study],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.RADTRIAGE_SCORING_LEASE_SECONDS = 15.0
    now = timezone.now()
    dead = store_study(make_ct_head_study(42, slices=2, size=64))
    alive = store_study(make_ct_head_study(43, slices=2, size=64))
    ended = store_study(make_ct_head_study(44, slices=2, size=64))
    early = store_study(make_ct_head_study(45, slices=2, size=64))
    for study in (dead, alive, ended, early):
        assert scoring._claim(study.pk, now - timedelta(seconds=30)) is not None
    scoring_lease.renew(alive.pk, now - timedelta(seconds=30), now=now)
    StudyScoring.objects.filter(study_id=ended.pk).update(ai_status=AIStatus.SCORED)
    # An early run (study still receiving): back to pending, its stability
    # queues it.
    Study.objects.filter(pk=early.pk).update(stable_at=None)
    with (
        mock.patch.object(tasks.score_study, "apply_async") as send,
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.reclaim_expired_scoring()
    assert [call.args[0][0] for call in send.call_args_list] == [dead.pk]
    statuses = dict(StudyScoring.objects.values_list("study_id", "ai_status"))
    assert statuses == {
        dead.pk: AIStatus.QUEUED,
        alive.pk: AIStatus.SCORING,
        ended.pk: AIStatus.SCORED,
        early.pk: AIStatus.PENDING,
    }
    # Expired leases are gone, the live one stays.
    assert list(ScoringLease.objects.values_list("study_id", flat=True)) == [alive.pk]
    # Queued: claimed once by the task sent, not again.
    assert scoring._claim(dead.pk, now) is not None
    assert scoring._claim(dead.pk, now + timedelta(seconds=1)) is None


def test_a_running_scoring_renews_its_lease(settings: Any) -> None:
    settings.RADTRIAGE_SCORING_LEASE_SECONDS = 0.15  # renewed every 50 ms
    renewed = threading.Event()
    calls: list[int] = []

    def renew(study_id: int, started_at: Any, *, now: Any) -> bool:
        calls.append(study_id)
        if len(calls) >= 3:
            renewed.set()
        return True

    with (
        mock.patch.object(scoring_lease, "renew", side_effect=renew),
        scoring_lease.renewed(7, timezone.now()),
    ):
        assert renewed.wait(5)
    count = len(calls)
    renewed.clear()
    assert not renewed.wait(0.2)  # stopped with the run
    assert len(calls) == count
    assert set(calls) == {7}


def test_scoring_holds_the_lease_while_the_models_run(
    small_ct: Study, settings: Any
) -> None:
    held: list[bool] = []
    real = scoring._score_with

    def score_with(*args: Any) -> Any:
        held.append(
            any(t.name.startswith("scoring-lease-") for t in threading.enumerate())
        )
        return real(*args)

    with mock.patch.object(scoring, "_score_with", side_effect=score_with):
        assert services.score_study(small_ct.pk, clock=timezone.now)
    assert held and all(held)
    assert not any(t.name.startswith("scoring-lease-") for t in threading.enumerate())


def test_a_study_that_keeps_killing_its_worker_is_failed_with_a_reason(
    small_ct: Study, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.RADTRIAGE_SCORING_LEASE_SECONDS = 15.0
    now = timezone.now() + timedelta(seconds=2)  # after it became stable
    lost = []
    with mock.patch.object(tasks.score_study, "apply_async"):
        for death in range(scoring_lease.MAX_LOST_RUNS + 1):
            claimed_at = now + timedelta(minutes=death)
            assert scoring._claim(small_ct.pk, claimed_at) is not None
            # Its worker dies: nothing renews the lease.
            lost.append(
                scoring_lease.reclaim_expired(now=claimed_at + timedelta(seconds=16))
            )
    assert lost == [[small_ct.pk]] * scoring_lease.MAX_LOST_RUNS + [[]]
    small_ct.refresh_from_db()
    assert scoring_of(small_ct).ai_status == AIStatus.FAILED
    assert scoring_of(small_ct).ai_status_reason == "the scoring process died 4 times"
    assert not ScoringLease.objects.exists()
