"""Orders meet their studies, whichever comes first; cancellations, ADT updates
and merges (triage.orders, one service for every transport)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from demo.synthetic import SyntheticStudy
from inference.services import queueing
from tests.factories import PatientFactory, StudyFactory, entry_of
from tests.triage.dicom_data import ct_study, encode
from triage import orders, services
from triage.ingest import core
from triage.models import Instance, Order, Patient, Study, StudyEvent
from triage.order_details import (
    OrderDetails,
    PatientDetails,
    PatientMergeDetails,
    order_priority_from_code,
    patient_class_from_code,
)
from triage.orders import OrderNotApplicable
from triage.vocabulary import IntakeSource, OrderPriority, OrderStatus, PatientClass
from worklist.queries import for_worklist
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

#: Receipt time of the tests' messages (now: the worklist scores at real time).
NOW = datetime.now(UTC)


def order(accession: str = "ACC-1", **fields: Any) -> OrderDetails:
    patient = fields.pop("patient", PatientDetails("MRN-1", "HOSP", "DOE^JANE"))
    return OrderDetails(accession_number=accession, patient=patient, **fields)


def stat_emergency(accession: str, **fields: Any) -> OrderDetails:
    return order(
        accession,
        patient_class=PatientClass.EMERGENCY,
        order_priority=OrderPriority.STAT,
        reason_for_study="sudden headache, ?bleed",
        assigned_location="ED^BAY3",
        ordering_provider="Dr A. Smith",
        callback_number="+1 555 0100",
        **fields,
    )


def store(study: SyntheticStudy, now: datetime = NOW) -> Study:
    for dataset in study.datasets:
        core.store_instance(encode(dataset), now=now)
    return Study.objects.get(study_instance_uid=study.study_instance_uid)


def kinds(study: Study) -> list[str]:
    return list(StudyEvent.objects.filter(study=study).values_list("kind", flat=True))


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Any) -> Callable[..., Any]:
    """Run a call and what it schedules for after its commit (the worklist)."""

    def run(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


@pytest.fixture
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, str]]]:
    """The scoring tasks sent, as (study ID, queue), instead of sending them."""
    sent: list[tuple[int, str]] = []
    monkeypatch.setattr(
        queueing,
        "_send_score_task",
        lambda study_id, queue: sent.append((study_id, queue)),
    )
    yield sent


# --- the codes the boundaries normalise ------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("E", PatientClass.EMERGENCY),
        ("i", PatientClass.INPATIENT),
        (" O ", PatientClass.OUTPATIENT),
        ("P", PatientClass.OUTPATIENT),
        ("B", PatientClass.INPATIENT),
        ("U", PatientClass.UNKNOWN),
        ("emergency", PatientClass.EMERGENCY),
        ("", PatientClass.UNKNOWN),
        ("Z", PatientClass.UNKNOWN),
    ],
)
def test_patient_class_codes_map_onto_the_classes(
    code: str, expected: PatientClass
) -> None:
    assert patient_class_from_code(code) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("S", OrderPriority.STAT),
        ("stat", OrderPriority.STAT),
        ("A", OrderPriority.URGENT),
        ("asap", OrderPriority.URGENT),
        ("urgent", OrderPriority.URGENT),
        ("R", OrderPriority.ROUTINE),
        ("routine", OrderPriority.ROUTINE),
        ("", OrderPriority.ROUTINE),
        ("X", OrderPriority.ROUTINE),
    ],
)
def test_priority_codes_map_onto_the_order_priorities(
    code: str, expected: OrderPriority
) -> None:
    assert order_priority_from_code(code) is expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: order(""),
        lambda: order("A" * 65),
        lambda: order(ordered_at=datetime(2026, 1, 1)),  # noqa: DTZ001 - the point
        lambda: PatientDetails(" "),
        lambda: PatientDetails("M" * 65),
        lambda: order(study_instance_uid="1." * 40),
        lambda: PatientMergeDetails(PatientDetails("MRN-1"), ""),
    ],
)
def test_details_without_what_they_need_are_refused(make: Callable[[], Any]) -> None:
    with pytest.raises(ValueError, match=r"^[a-z]"):
        make()


# --- orders before images --------------------------------------------------------


def test_an_order_before_the_images_gives_the_new_study_its_context(
    committed: Callable[..., Any],
) -> None:
    synthetic = ct_study(21)
    outcome = orders.receive_order(
        stat_emergency(synthetic.accession_number), source=IntakeSource.HL7, now=NOW
    )
    assert outcome.created and outcome.changed and outcome.study_id is None
    assert outcome.status is OrderStatus.SCHEDULED

    study = committed(store, synthetic)

    assert (study.patient_class, study.order_priority) == ("emergency", "stat")
    linked = Order.objects.get(pk=outcome.order_id)
    assert linked.study_id == study.pk
    assert linked.status == OrderStatus.IN_PROGRESS
    assert linked.study_instance_uid == synthetic.study_instance_uid
    assert study.order.reason_for_study == "sudden headache, ?bleed"
    assert study.order.callback_number == "+1 555 0100"
    assert kinds(study)[:3] == [
        StudyEvent.Kind.RECEIVED,
        StudyEvent.Kind.ORDER_RECEIVED,
        StudyEvent.Kind.ORDER_UPDATED,
    ]
    reasons = [c["reason"] for c in entry_of(study).priority_components]
    assert reasons[:2] == ["STAT order", "emergency"]


def test_a_stat_emergency_order_before_the_images_scores_on_the_urgent_queue(
    committed: Callable[..., Any], sent_tasks: list[tuple[int, str]]
) -> None:
    synthetic = ct_study(22)
    orders.receive_order(
        stat_emergency(synthetic.accession_number), source=IntakeSource.API, now=NOW
    )
    study = committed(store, synthetic)

    later = NOW + timedelta(minutes=10)
    assert committed(services.mark_study_stable, study.pk, now=later)

    assert sent_tasks == [(study.pk, queueing.URGENT_QUEUE)]
    queued = StudyEvent.objects.get(study=study, kind=StudyEvent.Kind.SCORING_QUEUED)
    assert queued.detail["queue"] == "urgent"
    components = entry_of(study).priority_components
    assert ", ".join(c["reason"] for c in components).startswith(
        "STAT order, emergency"
    )


def test_without_an_order_the_same_study_scores_on_the_routine_queue(
    committed: Callable[..., Any], sent_tasks: list[tuple[int, str]]
) -> None:
    study = committed(store, ct_study(23))
    assert committed(
        services.mark_study_stable, study.pk, now=NOW + timedelta(minutes=10)
    )
    assert sent_tasks == [(study.pk, queueing.ROUTINE_QUEUE)]


def test_an_order_for_another_study_uid_waits_for_its_own_images() -> None:
    synthetic = ct_study(24)
    orders.receive_order(
        stat_emergency(synthetic.accession_number, study_instance_uid="1.2.3.999"),
        source=IntakeSource.HL7,
        now=NOW,
    )
    study = store(synthetic)
    assert study.patient_class == PatientClass.UNKNOWN
    assert Order.objects.get().study_id is None


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's"
)
@pytest.mark.django_db(transaction=True)
def test_on_the_one_statement_path_the_order_meets_the_study_too() -> None:
    # The fast path only adds instances to a known study; the first instance
    # takes the general path, which creates the study and meets the order.
    synthetic = ct_study(25, slices=4)
    orders.receive_order(
        stat_emergency(synthetic.accession_number), source=IntakeSource.HL7, now=NOW
    )
    study = store(synthetic)
    assert study.instance_count == 4
    assert (study.patient_class, study.order_priority) == ("emergency", "stat")
    assert Order.objects.get().study_id == study.pk


# --- images before orders --------------------------------------------------------


def test_an_order_after_the_images_reprioritises_the_study(
    committed: Callable[..., Any],
) -> None:
    synthetic = ct_study(26)
    study = committed(store, synthetic)
    before = entry_of(study)

    outcome = committed(
        orders.receive_order,
        stat_emergency(synthetic.accession_number),
        source=IntakeSource.HL7,
        now=NOW,
    )

    assert outcome.study_id == study.pk and outcome.status is OrderStatus.IN_PROGRESS
    study.refresh_from_db()
    assert (study.patient_class, study.order_priority) == ("emergency", "stat")
    after = entry_of(study)
    assert after.priority_score > before.priority_score
    assert after.version > before.version  # a delta went out
    assert StudyEvent.Kind.ORDER_RECEIVED in kinds(study)


def test_an_order_without_a_uid_links_a_study_received_under_its_accession() -> None:
    study = StudyFactory.create(accession_number="ACC-9")
    outcome = orders.receive_order(order("ACC-9"), source=IntakeSource.API, now=NOW)
    assert outcome.study_id == study.pk
    assert Order.objects.get().study_instance_uid == study.study_instance_uid


def test_long_texts_are_cut_to_fit_rather_than_refusing_the_order() -> None:
    orders.receive_order(
        order("ACC-20", assigned_location="L" * 500, ordering_provider="D" * 500),
        source=IntakeSource.HL7,
        now=NOW,
    )
    saved = Order.objects.get()
    assert (len(saved.assigned_location), len(saved.ordering_provider)) == (128, 256)


def test_the_same_order_twice_changes_nothing(committed: Callable[..., Any]) -> None:
    study = StudyFactory.create(accession_number="ACC-2")
    first = committed(
        orders.receive_order, stat_emergency("ACC-2"), source=IntakeSource.HL7, now=NOW
    )
    events = kinds(study)
    version = entry_of(study).version

    again = committed(
        orders.receive_order,
        stat_emergency("ACC-2"),
        source=IntakeSource.HL7,
        now=NOW + timedelta(minutes=1),
    )

    assert (again.order_id, again.created, again.changed) == (
        first.order_id,
        False,
        False,
    )
    assert kinds(study) == events
    assert entry_of(study).version == version
    assert Order.objects.get().updated_at == NOW


def test_an_updated_order_is_recorded_and_kept() -> None:
    study = StudyFactory.create(accession_number="ACC-3")
    orders.receive_order(stat_emergency("ACC-3"), source=IntakeSource.HL7, now=NOW)
    later = NOW + timedelta(minutes=5)
    outcome = orders.receive_order(
        replace(stat_emergency("ACC-3"), reason_for_study="trauma"),
        source=IntakeSource.HL7,
        now=later,
    )
    assert outcome.changed and not outcome.created
    saved = Order.objects.get()
    assert saved.reason_for_study == "trauma"
    assert saved.updated_at == later
    assert saved.study_instance_uid == study.study_instance_uid  # kept
    assert kinds(study)[-1] == StudyEvent.Kind.ORDER_UPDATED


# --- mismatches ------------------------------------------------------------------


def test_another_uid_for_a_known_accession_is_refused_without_phi() -> None:
    orders.receive_order(
        order("ACC-4", study_instance_uid="1.2.3.4"), source=IntakeSource.HL7, now=NOW
    )
    with pytest.raises(OrderNotApplicable) as refused:
        orders.receive_order(
            order("ACC-4", study_instance_uid="1.2.3.5"),
            source=IntakeSource.HL7,
            now=NOW,
        )
    reason = refused.value.reason
    assert "Study Instance UID" in reason
    for phi in ("ACC-4", "1.2.3.4", "1.2.3.5", "MRN-1", "DOE"):
        assert phi not in reason
    assert Order.objects.get().study_instance_uid == "1.2.3.4"


def test_an_order_whose_uid_differs_from_the_study_received_is_refused() -> None:
    StudyFactory.create(accession_number="ACC-5", study_instance_uid="1.2.3.50")
    with pytest.raises(OrderNotApplicable, match="another Study Instance UID"):
        orders.receive_order(
            order("ACC-5", study_instance_uid="1.2.3.51"),
            source=IntakeSource.FHIR,
            now=NOW,
        )
    assert not Order.objects.exists()  # the transaction rolled back


def test_a_uid_whose_study_carries_another_accession_is_refused() -> None:
    StudyFactory.create(accession_number="OTHER", study_instance_uid="1.2.3.60")
    with pytest.raises(OrderNotApplicable, match="another accession"):
        orders.receive_order(
            order("ACC-6", study_instance_uid="1.2.3.60"),
            source=IntakeSource.HL7,
            now=NOW,
        )


# --- cancellation ----------------------------------------------------------------


def test_a_cancelled_order_takes_its_study_off_the_worklist_with_a_reason(
    committed: Callable[..., Any],
) -> None:
    synthetic = ct_study(27)
    study = committed(store, synthetic)
    committed(
        orders.receive_order,
        stat_emergency(synthetic.accession_number),
        source=IntakeSource.HL7,
        now=NOW,
    )
    assert for_worklist().filter(pk=study.pk).exists()

    outcome = committed(
        orders.receive_order,
        stat_emergency(
            synthetic.accession_number, cancelled=True, cancel_reason="ordered in error"
        ),
        source=IntakeSource.HL7,
        now=NOW + timedelta(minutes=2),
    )

    assert outcome.status is OrderStatus.CANCELLED
    assert entry_of(study).reading_status == ReadingStatus.CANCELLED
    assert not for_worklist().filter(pk=study.pk).exists()
    study.refresh_from_db()
    assert study.order.cancel_reason == "ordered in error"
    assert kinds(study)[-1] == StudyEvent.Kind.ORDER_CANCELLED
    # Never deleted: the images stay.
    assert Instance.objects.filter(series__study=study).count() == len(
        synthetic.datasets
    )

    # The RIS renews the order: the study is back where it stands.
    committed(
        orders.receive_order,
        stat_emergency(synthetic.accession_number),
        source=IntakeSource.HL7,
        now=NOW + timedelta(minutes=3),
    )
    assert entry_of(study).reading_status == ReadingStatus.AWAITING_IMAGES
    assert Order.objects.get().cancel_reason == ""
    assert for_worklist().filter(pk=study.pk).exists()


def test_images_of_a_cancelled_order_never_reach_the_worklist(
    committed: Callable[..., Any],
) -> None:
    synthetic = ct_study(28)
    orders.receive_order(
        order(synthetic.accession_number, cancelled=True, cancel_reason="duplicate"),
        source=IntakeSource.HL7,
        now=NOW,
    )
    study = committed(store, synthetic)
    assert entry_of(study).reading_status == ReadingStatus.CANCELLED
    assert not for_worklist().filter(pk=study.pk).exists()


# --- ADT: demographics and merges ---------------------------------------------


def test_new_demographics_reach_the_patient_and_their_orders(
    committed: Callable[..., Any],
) -> None:
    patient = PatientFactory.create(patient_id="MRN-7", issuer_of_patient_id="")
    study = StudyFactory.create(patient=patient, accession_number="ACC-7")
    orders.receive_order(
        order("ACC-7", patient=PatientDetails("MRN-7", "HOSP")),
        source=IntakeSource.HL7,
        now=NOW,
    )
    version = entry_of(study).version

    outcome = committed(
        orders.update_patient,
        PatientDetails("MRN-7", "HOSP", "ROE^RICHARD", date(1930, 5, 1), "M"),
        now=NOW,
    )

    assert outcome == orders.PatientOutcome(patients=1, orders=1, studies=1)
    patient.refresh_from_db()
    assert (patient.patient_name, patient.patient_birth_date, patient.patient_sex) == (
        "ROE^RICHARD",
        date(1930, 5, 1),
        "M",
    )
    assert Order.objects.get().patient_name == "ROE^RICHARD"
    # Now over 85: the age component moves the study.
    entry = entry_of(study)
    assert entry.version > version
    assert any(c["code"] == "age" for c in entry.priority_components)


def test_fields_an_update_leaves_empty_are_kept() -> None:
    patient = PatientFactory.create(
        patient_id="MRN-8", patient_birth_date=date(1970, 1, 2)
    )
    orders.update_patient(PatientDetails("MRN-8", patient_name="NEW^NAME"), now=NOW)
    patient.refresh_from_db()
    assert patient.patient_birth_date == date(1970, 1, 2)
    assert patient.patient_name == "NEW^NAME"


def test_a_merge_moves_the_merged_patients_studies_to_the_survivor(
    committed: Callable[..., Any],
) -> None:
    survivor = PatientFactory.create(patient_id="MRN-10")
    merged = PatientFactory.create(patient_id="MRN-11")
    kept = StudyFactory.create(patient=survivor)
    moved = [StudyFactory.create(patient=merged), StudyFactory.create(patient=merged)]
    orders.receive_order(
        order("ACC-11", patient=PatientDetails("MRN-11")),
        source=IntakeSource.HL7,
        now=NOW,
    )

    outcome = committed(
        orders.merge_patients,
        PatientMergeDetails(PatientDetails("MRN-10"), "MRN-11"),
        now=NOW,
    )

    assert outcome == orders.MergeOutcome(survivor.pk, studies=2, orders=1)
    for study in moved:
        study.refresh_from_db()
        assert study.patient_id == survivor.pk
        event = StudyEvent.objects.get(study=study, kind=StudyEvent.Kind.PATIENT_MERGED)
        assert event.detail == {
            "from_patient_id": [merged.pk],
            "to_patient_id": survivor.pk,
        }
    kept.refresh_from_db()
    assert kept.patient_id == survivor.pk
    assert not Patient.objects.filter(pk=merged.pk).exists()
    assert Order.objects.get().patient_id == "MRN-10"


def test_a_merge_into_a_patient_unknown_here_creates_the_survivor() -> None:
    merged = PatientFactory.create(patient_id="MRN-12", patient_name="OLD^NAME")
    study = StudyFactory.create(patient=merged)
    outcome = orders.merge_patients(
        PatientMergeDetails(PatientDetails("MRN-13", "HOSP"), "MRN-12"), now=NOW
    )
    survivor = Patient.objects.get(patient_id="MRN-13", issuer_of_patient_id="HOSP")
    assert outcome.surviving_patient_id == survivor.pk
    assert survivor.patient_name == "OLD^NAME"
    study.refresh_from_db()
    assert study.patient_id == survivor.pk


def test_a_merge_of_a_patient_unknown_here_changes_nothing() -> None:
    study = StudyFactory.create()
    outcome = orders.merge_patients(
        PatientMergeDetails(PatientDetails("MRN-20"), "MRN-21"), now=NOW
    )
    assert outcome == orders.MergeOutcome(None, 0, 0)
    assert Study.objects.get(pk=study.pk).patient_id == study.patient_id
