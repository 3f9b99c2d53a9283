"""The priority engine: every component, ties, aging, the cap and the reasons."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from triage.vocabulary import OrderPriority, PatientClass
from worklist.priority import (
    ComponentCode,
    FindingInput,
    ListPlace,
    PriorityInputs,
    PriorityWeights,
    compute_priority,
    rank,
    waiting_start,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WEIGHTS = PriorityWeights()
ICH = FindingInput("ich", "ICH", severity=1.0, probability=0.94, positive=True)


def inputs(
    *,
    order: OrderPriority = OrderPriority.ROUTINE,
    patient_class: PatientClass = PatientClass.OUTPATIENT,
    waited: float = 0.0,
    findings: tuple[FindingInput, ...] = (),
    age: int | None = None,
) -> PriorityInputs:
    return PriorityInputs(
        order_priority=order,
        patient_class=patient_class,
        waiting_since=NOW - timedelta(minutes=waited),
        findings=findings,
        patient_age_years=age,
    )


def points(score_inputs: PriorityInputs, code: ComponentCode) -> float:
    score = compute_priority(score_inputs, WEIGHTS, now=NOW)
    return sum(c.points for c in score.components if c.code is code)


@pytest.mark.parametrize(
    ("order", "expected", "reason"),
    [
        (OrderPriority.STAT, 40.0, "STAT order"),
        (OrderPriority.URGENT, 20.0, "urgent order"),
        (OrderPriority.ROUTINE, 0.0, "routine order"),
    ],
)
def test_order_priority_earns_its_configured_points(
    order: OrderPriority, expected: float, reason: str
) -> None:
    score = compute_priority(inputs(order=order), WEIGHTS, now=NOW)
    (component,) = [c for c in score.components if c.code is ComponentCode.ORDER]
    assert component.points == expected
    assert component.reason == reason


@pytest.mark.parametrize(
    ("patient_class", "expected", "reason"),
    [
        (PatientClass.EMERGENCY, 30.0, "emergency"),
        (PatientClass.INPATIENT, 15.0, "inpatient"),
        (PatientClass.OUTPATIENT, 0.0, "outpatient"),
        (PatientClass.UNKNOWN, 5.0, "patient class unknown"),
    ],
)
def test_patient_class_earns_its_configured_points(
    patient_class: PatientClass, expected: float, reason: str
) -> None:
    score = compute_priority(inputs(patient_class=patient_class), WEIGHTS, now=NOW)
    (component,) = [
        c for c in score.components if c.code is ComponentCode.PATIENT_CLASS
    ]
    assert (component.points, component.reason) == (expected, reason)


def test_waiting_earns_linearly_against_the_sla_of_the_class() -> None:
    emergency = inputs(patient_class=PatientClass.EMERGENCY, waited=30)
    outpatient = inputs(patient_class=PatientClass.OUTPATIENT, waited=30)
    assert points(emergency, ComponentCode.WAITING) == 10.0  # half of 60 min
    assert points(outpatient, ComponentCode.WAITING) == pytest.approx(
        20 * 30 / 1440, abs=0.01
    )


def test_waiting_reason_reads_minutes_of_the_target() -> None:
    score = compute_priority(
        inputs(patient_class=PatientClass.EMERGENCY, waited=38.6), WEIGHTS, now=NOW
    )
    assert "waiting 38 min of 60" in score.reasons


def test_study_not_yet_received_has_not_waited() -> None:
    study = replace(inputs(), waiting_since=None)
    assert points(study, ComponentCode.WAITING) == 0.0


def test_clock_skew_never_gives_negative_waiting() -> None:
    assert points(inputs(waited=-5), ComponentCode.WAITING) == 0.0


def test_ai_finding_earns_severity_times_probability() -> None:
    score = compute_priority(inputs(findings=(ICH,)), WEIGHTS, now=NOW)
    (ai,) = [c for c in score.components if c.code is ComponentCode.AI]
    assert ai.points == pytest.approx(100 * 0.94)
    assert ai.reason == "ICH suspected 0.94"
    assert score.ai_flagged


def test_only_the_strongest_finding_counts() -> None:
    fracture = FindingInput(
        "fx", "Fracture", severity=0.5, probability=0.99, positive=True
    )
    score = compute_priority(inputs(findings=(fracture, ICH)), WEIGHTS, now=NOW)
    ai = [c for c in score.components if c.code is ComponentCode.AI]
    assert [c.reason for c in ai] == ["ICH suspected 0.94"]


@pytest.mark.parametrize(
    "finding",
    [
        replace(ICH, positive=False),
        replace(ICH, shadow=True),
    ],
    ids=["negative", "shadow-model"],
)
def test_negative_or_shadow_findings_add_nothing(finding: FindingInput) -> None:
    with_finding = compute_priority(inputs(findings=(finding,)), WEIGHTS, now=NOW)
    without = compute_priority(inputs(), WEIGHTS, now=NOW)
    assert with_finding.total == without.total
    assert not with_finding.ai_flagged


@pytest.mark.parametrize("order", list(OrderPriority))
@pytest.mark.parametrize("patient_class", list(PatientClass))
@pytest.mark.parametrize("probability", [0.0, 0.3, 0.99])
def test_ai_never_lowers_a_study_below_its_clinical_priority(
    order: OrderPriority, patient_class: PatientClass, probability: float
) -> None:
    clinical = inputs(order=order, patient_class=patient_class, waited=10)
    finding = replace(ICH, probability=probability, positive=probability > 0.5)
    with_ai = replace(clinical, findings=(finding,))
    assert (
        compute_priority(with_ai, WEIGHTS, now=NOW).total
        >= compute_priority(clinical, WEIGHTS, now=NOW).total
    )


def test_out_of_range_model_output_is_clamped_to_the_ai_ceiling() -> None:
    wild = FindingInput("x", "X", severity=3.0, probability=1.7, positive=True)
    assert points(inputs(findings=(wild,)), ComponentCode.AI) == WEIGHTS.ai_points


@pytest.mark.parametrize(
    ("age", "expected"), [(1, 5.0), (2, 0.0), (50, 0.0), (85, 5.0)]
)
def test_very_young_and_very_old_patients_earn_age_points(
    age: int, expected: float
) -> None:
    assert points(inputs(age=age), ComponentCode.AGE) == expected


def test_age_reason_names_the_age() -> None:
    score = compute_priority(inputs(age=91), WEIGHTS, now=NOW)
    assert "patient age 91" in score.reasons


def test_unknown_age_earns_nothing() -> None:
    assert points(inputs(age=None), ComponentCode.AGE) == 0.0


def test_total_is_the_sum_of_its_components() -> None:
    study = inputs(
        order=OrderPriority.STAT,
        patient_class=PatientClass.EMERGENCY,
        waited=30,
        findings=(ICH,),
        age=88,
    )
    score = compute_priority(study, WEIGHTS, now=NOW)
    assert score.total == pytest.approx(40 + 30 + 5 + 10 + 94)
    assert score.total == pytest.approx(sum(c.points for c in score.components))


def test_reasons_read_biggest_contribution_first_and_skip_zero_points() -> None:
    study = inputs(
        order=OrderPriority.URGENT,
        patient_class=PatientClass.EMERGENCY,
        waited=38,
        findings=(ICH,),
    )
    score = compute_priority(study, WEIGHTS, now=NOW)
    assert score.reasons == (
        "ICH suspected 0.94",
        "emergency",
        "urgent order",
        "waiting 38 min of 60",
    )
    assert "routine order" not in compute_priority(inputs(), WEIGHTS, now=NOW).reasons


def test_components_serialise_for_the_study_row() -> None:
    score = compute_priority(inputs(findings=(ICH,)), WEIGHTS, now=NOW)
    assert {
        "code": "ai",
        "points": 94.0,
        "reason": "ICH suspected 0.94",
        "finding": "ich",
    } in [c.as_dict() for c in score.components]


def test_weights_and_sla_targets_are_configurable() -> None:
    weights = PriorityWeights(
        order_points={OrderPriority.STAT: 100.0},
        sla_minutes={pc: 10.0 for pc in PatientClass},
        waiting_points=1.0,
    )
    score = compute_priority(
        inputs(order=OrderPriority.STAT, waited=5), weights, now=NOW
    )
    assert score.total == pytest.approx(100 + 0.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"ai_points": -1.0},
        {"max_wait_factor": 0.0},
        {"sla_minutes": {PatientClass.EMERGENCY: 60.0}},
    ],
)
def test_invalid_weights_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        PriorityWeights(**bad)  # type: ignore[arg-type]


def test_overdue_study_earns_the_ai_ceiling_and_says_so() -> None:
    # Emergency: SLA 60 min, cap 1.5 x 60 = 90 min.
    overdue = inputs(patient_class=PatientClass.EMERGENCY, waited=95)
    score = compute_priority(overdue, WEIGHTS, now=NOW)
    assert score.overdue
    assert points(overdue, ComponentCode.OVERDUE) == WEIGHTS.ai_points
    assert "overdue: waited over 90 min" in score.reasons
    assert not compute_priority(
        inputs(patient_class=PatientClass.EMERGENCY, waited=89), WEIGHTS, now=NOW
    ).overdue


def test_overdue_study_outranks_any_later_ai_flagged_study_of_its_class() -> None:
    unflagged = inputs(waited=1440 * 1.5)
    certain = FindingInput("ich", "ICH", 1.0, 1.0, positive=True)
    flagged_later = inputs(waited=1440 * 1.5 - 1, findings=(certain,))
    assert (
        compute_priority(unflagged, WEIGHTS, now=NOW).total
        > compute_priority(flagged_later, WEIGHTS, now=NOW).total
    )


def test_ties_break_older_first_then_by_id() -> None:
    earlier = NOW - timedelta(minutes=5)
    entries = [
        ListPlace(3, 10.0, NOW),
        ListPlace(2, 10.0, earlier),
        ListPlace(1, 10.0, NOW),
        ListPlace(4, 11.0, NOW),
        ListPlace(5, 10.0, None),
    ]
    assert [e.study_id for e in rank(entries)] == [4, 2, 1, 3, 5]


def _simulate_routine_wait(weights: PriorityWeights) -> float:
    """Minutes an unflagged routine study waits while flagged ones keep coming.

    Every 10 minutes a new AI-flagged outpatient study arrives and a reader reads
    one study, every 20 minutes: arrivals outpace reading, so without a cap the
    unflagged study would never reach the top.
    """
    start = NOW
    waiting: dict[int, PriorityInputs] = {
        0: PriorityInputs(OrderPriority.ROUTINE, PatientClass.OUTPATIENT, start)
    }
    finding = FindingInput("fx", "Fracture", 0.6, 0.9, positive=True)
    next_id = 1
    for minute in range(0, 20 * 1440, 10):
        now = start + timedelta(minutes=minute)
        waiting[next_id] = PriorityInputs(
            OrderPriority.ROUTINE, PatientClass.OUTPATIENT, now, (finding,)
        )
        next_id += 1
        if minute % 20 == 0:
            ranked = rank(
                ListPlace(
                    study_id,
                    compute_priority(study, weights, now=now).total,
                    study.waiting_since,
                )
                for study_id, study in waiting.items()
            )
            top = ranked[0].study_id
            del waiting[top]
            if top == 0:
                return float(minute)
    return float("inf")


def test_maximum_wait_cap_bounds_the_wait_of_unflagged_routine_studies() -> None:
    cap_minutes = WEIGHTS.max_wait_minutes(PatientClass.OUTPATIENT)
    waited = _simulate_routine_wait(WEIGHTS)
    # Read at the first reading slot after reaching the cap.
    assert cap_minutes <= waited <= cap_minutes + 20


def test_without_the_cap_ai_reordering_makes_unflagged_studies_wait_longer() -> None:
    cap_minutes = WEIGHTS.max_wait_minutes(PatientClass.OUTPATIENT)
    uncapped = PriorityWeights(max_wait_factor=1e9)
    assert _simulate_routine_wait(uncapped) > 1.5 * cap_minutes


@pytest.mark.parametrize(
    ("acquired", "received", "expected"),
    [
        (NOW - timedelta(minutes=20), NOW, NOW - timedelta(minutes=20)),
        (None, NOW, NOW),
        (NOW - timedelta(days=400), NOW, NOW),  # an old prior re-sent
        (NOW + timedelta(minutes=5), NOW, NOW),  # a modality clock ahead
        (NOW, None, NOW),
    ],
    ids=["plausible", "unknown", "old-prior", "clock-ahead", "not-received"],
)
def test_the_wait_starts_at_acquisition_only_when_plausible(
    acquired: datetime | None, received: datetime | None, expected: datetime
) -> None:
    assert waiting_start(acquired, received) == expected
