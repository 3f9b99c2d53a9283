"""Marking studies and series stable: once per quiet period, announced on commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from tests.factories import entry_of
from tests.triage.dicom_data import ct_study, encode, modified, new_uid
from triage import services, tasks
from triage.ingest.core import store_instance
from triage.models import Series, Study, StudyEvent
from triage.signals import series_stable, study_changed, study_stable
from triage.stability import parse_stability_seconds
from worklist.models import WorklistEntry
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def _rules(settings: Any) -> None:
    settings.RADTRIAGE_STABILITY = parse_stability_seconds("CT=10,SR=20,*=15")


@pytest.fixture
def announced() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every stability signal sent, as (signal name, arguments)."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def receiver(name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal")
            sent.append((name, kwargs))

        return receive

    receivers = {
        study_stable: receiver("study_stable"),
        series_stable: receiver("series_stable"),
        study_changed: receiver("study_changed"),
    }
    for signal, receive in receivers.items():
        signal.connect(receive)
    yield sent
    for signal, receive in receivers.items():
        signal.disconnect(receive)


@pytest.fixture
def sweep(django_capture_on_commit_callbacks: Any) -> Callable[[float], list[int]]:
    """Run the stability sweep at T0 + seconds, with on-commit work executed."""

    def run(seconds: float) -> list[int]:
        with django_capture_on_commit_callbacks(execute=True):
            marked = services.mark_stable_studies(at(seconds))
            services.mark_stable_series(at(seconds))
        return marked

    return run


def arrival_events() -> list[str]:
    """The study's arrival and stability events (scoring adds its own)."""
    kinds = ("received", "stable", "reopened")
    events = StudyEvent.objects.filter(kind__in=kinds).order_by("at", "pk")
    return list(events.values_list("kind", flat=True))


def stable_study_signals(sent: list[tuple[str, dict[str, Any]]]) -> list[int]:
    return [args["study_id"] for name, args in sent if name == "study_stable"]


def test_stability_fires_once_while_instances_arrive_over_time(
    announced: list[tuple[str, dict[str, Any]]], sweep: Callable[[float], list[int]]
) -> None:
    study = ct_study(slices=4)
    for i, dataset in enumerate(study.datasets):
        store_instance(encode(dataset), now=at(4 * i))  # 0, 4, 8, 12 s
        assert sweep(4 * i + 3) == []  # never 10 s quiet while sending

    assert sweep(21.9) == []  # 9.9 s after the last instance
    [study_id] = sweep(22)
    assert sweep(23) == []
    assert sweep(600) == []

    assert stable_study_signals(announced) == [study_id]
    study_row = Study.objects.get()
    assert study_row.stable_at == at(22)
    assert entry_of(study_row).reading_status == ReadingStatus.AWAITING_AI
    assert arrival_events() == ["received", "stable"]
    assert ("study_changed", {"study_id": study_id}) in announced


def test_late_instances_reopen_the_study_and_it_fires_again(
    announced: list[tuple[str, dict[str, Any]]], sweep: Callable[[float], list[int]]
) -> None:
    study = ct_study(slices=3)
    store_instance(encode(study.datasets[0]), now=at(0))
    [study_id] = sweep(10)

    store_instance(encode(study.datasets[1]), now=at(30))
    store_instance(encode(study.datasets[2]), now=at(35))
    assert Study.objects.get().stable_at is None
    assert sweep(44) == []
    assert sweep(45) == [study_id]
    assert sweep(100) == []

    assert stable_study_signals(announced) == [study_id, study_id]
    assert arrival_events() == ["received", "stable", "reopened", "stable"]


def test_a_resent_duplicate_does_not_reopen_a_stable_study(
    announced: list[tuple[str, dict[str, Any]]], sweep: Callable[[float], list[int]]
) -> None:
    data = encode(ct_study().datasets[0])
    store_instance(data, now=at(0))
    sweep(10)
    store_instance(data, now=at(20))
    assert Study.objects.get().stable_at == at(10)
    assert sweep(40) == []
    assert len(stable_study_signals(announced)) == 1


def test_a_study_waits_for_its_slowest_modality(
    sweep: Callable[[float], list[int]],
) -> None:
    study = ct_study(slices=2)
    store_instance(encode(study.datasets[0]), now=at(0))
    dose_report = modified(
        study.datasets[1], SeriesInstanceUID=new_uid(), Modality="SR"
    )
    store_instance(dose_report, now=at(1))
    assert sweep(20) == []  # CT alone would be stable; SR needs 20 s
    assert len(sweep(21)) == 1


def test_marking_a_study_twice_marks_it_once(
    announced: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    outcome = store_instance(encode(ct_study().datasets[0]), now=at(0))
    with django_capture_on_commit_callbacks(execute=True):
        first = services.mark_study_stable(outcome.study_id, now=at(30))
        second = services.mark_study_stable(outcome.study_id, now=at(31))
    assert (first, second) == (True, False)
    assert stable_study_signals(announced) == [outcome.study_id]


def test_a_study_being_read_keeps_its_reading_status(
    sweep: Callable[[float], list[int]],
) -> None:
    store_instance(encode(ct_study().datasets[0]), now=at(0))
    WorklistEntry.objects.update(reading_status=ReadingStatus.IN_PROGRESS)
    sweep(10)
    assert WorklistEntry.objects.get().reading_status == ReadingStatus.IN_PROGRESS


def test_a_quiet_series_is_announced_before_its_study_is_stable(
    announced: list[tuple[str, dict[str, Any]]], sweep: Callable[[float], list[int]]
) -> None:
    axial = ct_study(slices=2)
    store_instance(encode(axial.datasets[0]), now=at(0))
    store_instance(encode(axial.datasets[1]), now=at(1))
    # A reformat series keeps arriving: the study is not quiet.
    reformat_uid = new_uid()
    for i in range(3):
        reformat = modified(
            axial.datasets[0],
            SeriesInstanceUID=reformat_uid,
            SOPInstanceUID=new_uid(),
            InstanceNumber=i + 1,
        )
        store_instance(reformat, now=at(6 + 4 * i))  # 6, 10, 14 s

    assert sweep(12) == []
    axial_series = Series.objects.get(series_instance_uid=axial.series_instance_uid)
    assert [args for name, args in announced if name == "series_stable"] == [
        {"study_id": axial_series.study_id, "series_id": axial_series.pk}
    ]
    assert Series.objects.get(series_instance_uid=reformat_uid).stable_at is None

    [study_id] = sweep(24)
    # The reformat series became stable together with its study: no early signal.
    assert sum(name == "series_stable" for name, _ in announced) == 1
    assert stable_study_signals(announced) == [study_id]
    assert not Series.objects.filter(stable_at__isnull=True).exists()


def test_a_series_is_handed_over_once_its_study_moves_on_to_another(
    announced: list[tuple[str, dict[str, Any]]], sweep: Callable[[float], list[int]]
) -> None:
    axial = ct_study(slices=2)
    store_instance(encode(axial.datasets[0]), now=at(0))
    store_instance(encode(axial.datasets[1]), now=at(1))
    reformat = modified(
        axial.datasets[0], SeriesInstanceUID=new_uid(), SOPInstanceUID=new_uid()
    )
    store_instance(reformat, now=at(2))

    sweep(2.9)  # the axial series is quiet for 1.9 s only
    assert not [name for name, _ in announced if name == "series_stable"]
    sweep(3)  # 2 s quiet, and the study moved on: complete, 7 s before CT's 10
    axial_series = Series.objects.get(series_instance_uid=axial.series_instance_uid)
    assert axial_series.stable_at == at(3)
    assert [args for name, args in announced if name == "series_stable"] == [
        {"study_id": axial_series.study_id, "series_id": axial_series.pk}
    ]
    # The last series has nothing after it: it waits its quiet period, as the
    # study does.
    assert Series.objects.filter(stable_at__isnull=True).count() == 1
    assert Study.objects.get().stable_at is None


def test_a_late_instance_reopens_its_series() -> None:
    study = ct_study(slices=2)
    store_instance(encode(study.datasets[0]), now=at(0))
    services.mark_stable_series(at(10))
    assert Series.objects.get().stable_at == at(10)
    store_instance(encode(study.datasets[1]), now=at(11))
    assert Series.objects.get().stable_at is None


def test_the_beat_task_sweeps_with_the_current_time(
    announced: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    store_instance(encode(ct_study().datasets[0]), now=timezone.now())
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=11), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        tasks.sweep_stability()
    assert len(stable_study_signals(announced)) == 1


def test_the_sweep_runs_every_few_seconds_on_the_urgent_queue(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["sweep-stability"]
    assert entry["task"] == "triage.tasks.sweep_stability"
    assert entry["schedule"] <= 2
    assert entry["options"]["queue"] == "urgent"


def test_a_reopened_study_shows_awaiting_images_again_at_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = ct_study(slices=2)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = store_instance(encode(study.datasets[0]), now=at(0))
        assert services.mark_study_stable(outcome.study_id, now=at(30))
    assert (
        WorklistEntry.objects.get(study_id=outcome.study_id).reading_status
        == ReadingStatus.AWAITING_AI
    )
    with django_capture_on_commit_callbacks(execute=True):
        store_instance(encode(study.datasets[1]), now=at(40))  # a late slice
    assert (
        WorklistEntry.objects.get(study_id=outcome.study_id).reading_status
        == ReadingStatus.AWAITING_IMAGES
    )
