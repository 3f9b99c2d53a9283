"""The priority engine: why a study sits where it does in the worklist.

Plain Python (no Django): inputs and outputs are frozen dataclasses and the current
time is passed in. The score is a sum of components, each with a reason a
radiologist can read ("ICH suspected 0.94", "emergency", "waiting 38 min of 60").

Clinical priority (order priority, patient class, patient age, waiting time against
the SLA target of the patient class) sets a floor: AI findings only ever add points,
so AI can raise a study but never lower it below where its clinical priority puts
it. AI reordering pushes unflagged studies back, which without a bound lets them
wait for ever; the maximum-wait cap bounds that: once a study has waited
``max_wait_factor`` times its SLA target, it earns the AI ceiling outright (and its
own AI points no longer count), so no later study of the same or lower clinical
priority can pass it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from triage.vocabulary import OrderPriority, PatientClass


class ComponentCode(StrEnum):
    """The kinds of points a score is made of."""

    ORDER = "order"
    PATIENT_CLASS = "patient_class"
    AGE = "age"
    WAITING = "waiting"
    AI = "ai"
    OVERDUE = "overdue"


@dataclass(frozen=True, slots=True)
class FindingInput:
    """One AI finding of a study, as the engine needs it.

    Attributes:
        code: the finding's code ("ich").
        display: what a reader calls it ("ICH").
        severity: clinical weight of the finding when present, 0.0 to 1.0
            (1.0: a critical finding such as haemorrhage).
        probability: the model's probability, 0.0 to 1.0.
        positive: whether the probability passed the model's threshold.
        shadow: a model in shadow mode is recorded but never moves the list.
    """

    code: str
    display: str
    severity: float
    probability: float
    positive: bool
    shadow: bool = False


@dataclass(frozen=True, slots=True)
class PriorityInputs:
    """What the engine knows of one study.

    Attributes:
        order_priority: from the order (HL7 or DICOM RequestedProcedurePriority).
        patient_class: emergency, inpatient, outpatient or unknown.
        waiting_since: when the study became available to read (first instance
            received); None when not yet known, which counts as no wait.
        findings: AI findings, positive or not.
        patient_age_years: whole years at the time of the study, or None.
    """

    order_priority: OrderPriority
    patient_class: PatientClass
    waiting_since: datetime | None
    findings: tuple[FindingInput, ...] = ()
    patient_age_years: int | None = None


def _default_order_points() -> dict[OrderPriority, float]:
    return {OrderPriority.STAT: 40.0, OrderPriority.URGENT: 20.0}


def _default_class_points() -> dict[PatientClass, float]:
    return {
        PatientClass.EMERGENCY: 30.0,
        PatientClass.INPATIENT: 15.0,
        PatientClass.UNKNOWN: 5.0,
    }


def _default_sla_minutes() -> dict[PatientClass, float]:
    return {
        PatientClass.EMERGENCY: 60.0,
        PatientClass.INPATIENT: 240.0,
        PatientClass.OUTPATIENT: 1440.0,
        PatientClass.UNKNOWN: 480.0,
    }


@dataclass(frozen=True, slots=True)
class PriorityWeights:
    """The engine's knobs; every value is in points unless said otherwise.

    Attributes:
        order_points: points per order priority (absent: 0).
        class_points: points per patient class (absent: 0).
        ai_points: points for a positive finding of severity 1.0 at probability
            1.0; a finding earns severity x probability x ai_points. Also the
            ceiling of what AI can add, and what an overdue study earns. The
            default (100) outweighs the largest clinical priority (STAT, emergency:
            70), so a confidently flagged critical finding goes to the top, as
            cleared triage devices do.
        waiting_points: points earned on reaching the SLA target; waiting earns
            linearly, before and after the target.
        sla_minutes: SLA target per patient class, in minutes (> 0).
        max_wait_factor: a study is overdue once it has waited this many times its
            SLA target (> 0).
        age_points: points for a patient younger than ``young_age_years`` or at
            least ``old_age_years``.
        young_age_years: children below this age (years) earn ``age_points``.
        old_age_years: patients of this age (years) or older earn ``age_points``.
    """

    order_points: Mapping[OrderPriority, float] = field(
        default_factory=_default_order_points
    )
    class_points: Mapping[PatientClass, float] = field(
        default_factory=_default_class_points
    )
    ai_points: float = 100.0
    waiting_points: float = 20.0
    sla_minutes: Mapping[PatientClass, float] = field(
        default_factory=_default_sla_minutes
    )
    max_wait_factor: float = 1.5
    age_points: float = 5.0
    young_age_years: int = 2
    old_age_years: int = 85

    def __post_init__(self) -> None:
        if self.ai_points < 0 or self.waiting_points < 0 or self.age_points < 0:
            raise ValueError("points must not be negative")
        if self.max_wait_factor <= 0:
            raise ValueError("max_wait_factor must be positive")
        for patient_class in PatientClass:
            if self.sla_minutes.get(patient_class, 0) <= 0:
                raise ValueError(f"no positive SLA target for {patient_class}")

    def sla_for(self, patient_class: PatientClass) -> float:
        """SLA target of ``patient_class`` in minutes."""
        return self.sla_minutes[patient_class]

    def max_wait_minutes(self, patient_class: PatientClass) -> float:
        """Minutes after which a study of ``patient_class`` is overdue."""
        return self.sla_for(patient_class) * self.max_wait_factor


@dataclass(frozen=True, slots=True)
class PriorityComponent:
    """One reason a study sits where it does, and the points it is worth."""

    code: ComponentCode
    points: float
    reason: str
    #: For an AI component, the code of the finding that earned it.
    finding: str = ""

    def as_dict(self) -> dict[str, str | float]:
        """JSON-ready form, as stored on the study and shown to readers."""
        data: dict[str, str | float] = {
            "code": self.code.value,
            "points": self.points,
            "reason": self.reason,
        }
        if self.finding:
            data["finding"] = self.finding
        return data


@dataclass(frozen=True, slots=True)
class PriorityScore:
    """A study's score (points, higher is more urgent) and its components."""

    total: float
    components: tuple[PriorityComponent, ...]
    overdue: bool = False

    @property
    def reasons(self) -> tuple[str, ...]:
        """The components' reasons, biggest contribution first."""
        ordered = sorted(self.components, key=lambda c: -c.points)
        return tuple(c.reason for c in ordered if c.points > 0)

    @property
    def ai_flagged(self) -> bool:
        """Whether an AI finding added points."""
        return any(c.code is ComponentCode.AI and c.points > 0 for c in self.components)


_ORDER_REASON = {
    OrderPriority.STAT: "STAT order",
    OrderPriority.URGENT: "urgent order",
    OrderPriority.ROUTINE: "routine order",
}


def _round(points: float) -> float:
    return round(points, 2)


def _format_probability(probability: float) -> str:
    return f"{probability:.2f}"


def _ai_component(
    findings: Iterable[FindingInput], weights: PriorityWeights
) -> PriorityComponent | None:
    """The strongest positive, non-shadow finding, or None without one."""
    best: FindingInput | None = None
    best_points = 0.0
    for finding in findings:
        if not finding.positive or finding.shadow:
            continue
        severity = min(max(finding.severity, 0.0), 1.0)
        probability = min(max(finding.probability, 0.0), 1.0)
        points = severity * probability * weights.ai_points
        # Ties between findings: the more probable, then the code, so the reason
        # shown never depends on the order findings were stored in.
        if best is None or (points, finding.probability, finding.code) > (
            best_points,
            best.probability,
            best.code,
        ):
            best, best_points = finding, points
    if best is None:
        return None
    reason = f"{best.display} suspected {_format_probability(best.probability)}"
    return PriorityComponent(
        ComponentCode.AI, _round(best_points), reason, finding=best.code
    )


#: Longest plausible delay between acquisition and arrival: beyond it the
#: acquisition time is not believed (a modality clock off, an old prior re-sent).
MAX_TRANSFER = timedelta(hours=24)


def waiting_start(
    acquired_at: datetime | None,
    received_at: datetime | None,
    *,
    max_transfer: timedelta = MAX_TRANSFER,
) -> datetime | None:
    """When a study started waiting: acquired, if plausibly so, else received.

    The acquisition time counts when it is no later than the first arrival and
    at most ``max_transfer`` before it; otherwise (no acquisition time, a clock
    off, an old study re-sent) the wait starts at the first arrival.
    """
    if acquired_at is None or received_at is None:
        return received_at or acquired_at
    if received_at - max_transfer <= acquired_at <= received_at:
        return acquired_at
    return received_at


def waited_minutes(inputs: PriorityInputs, now: datetime) -> float:
    """Minutes the study has waited at ``now`` (0 when not yet known)."""
    if inputs.waiting_since is None:
        return 0.0
    return max((now - inputs.waiting_since).total_seconds() / 60.0, 0.0)


def compute_priority(
    inputs: PriorityInputs, weights: PriorityWeights, *, now: datetime
) -> PriorityScore:
    """Score one study and say why.

    Args:
        inputs: what is known of the study.
        weights: the site's configured weights and SLA targets.
        now: the current time (aware).

    Returns:
        The total in points (higher reads first; at least the clinical priority,
        never lowered by AI) and its components, each with a reason.
    """
    components: list[PriorityComponent] = []
    order = inputs.order_priority
    components.append(
        PriorityComponent(
            ComponentCode.ORDER,
            _round(weights.order_points.get(order, 0.0)),
            _ORDER_REASON[order],
        )
    )
    patient_class = inputs.patient_class
    class_reason = (
        "patient class unknown"
        if patient_class is PatientClass.UNKNOWN
        else patient_class.value
    )
    components.append(
        PriorityComponent(
            ComponentCode.PATIENT_CLASS,
            _round(weights.class_points.get(patient_class, 0.0)),
            class_reason,
        )
    )
    age = inputs.patient_age_years
    if age is not None and (
        age < weights.young_age_years or age >= weights.old_age_years
    ):
        components.append(
            PriorityComponent(
                ComponentCode.AGE, _round(weights.age_points), f"patient age {age}"
            )
        )

    waited = waited_minutes(inputs, now)
    sla = weights.sla_for(patient_class)
    components.append(
        PriorityComponent(
            ComponentCode.WAITING,
            _round(weights.waiting_points * waited / sla),
            f"waiting {int(waited)} min of {int(sla)}",
        )
    )

    max_wait = weights.max_wait_minutes(patient_class)
    overdue = waited >= max_wait
    ai = _ai_component(inputs.findings, weights)
    if overdue:
        # The cap: the AI ceiling outright, so no later study of the same clinical
        # priority passes this one, whatever its findings.
        components.append(
            PriorityComponent(
                ComponentCode.OVERDUE,
                _round(weights.ai_points),
                f"overdue: waited over {int(max_wait)} min",
            )
        )
    elif ai is not None:
        components.append(ai)

    total = _round(sum(c.points for c in components))
    return PriorityScore(total=total, components=tuple(components), overdue=overdue)


@dataclass(frozen=True, slots=True)
class ListPlace:
    """What decides a study's place in the list."""

    study_id: int
    score: float
    received_at: datetime | None


#: The worklist order, the one definition: (ListPlace field, descending?), most
#: significant first. Highest score first, then the earliest first arrival (not
#: yet received: last), then the id, so ties are deterministic.
#: ``worklist.queries`` orders the database by the same list.
WORKLIST_ORDER: tuple[tuple[str, bool], ...] = (
    ("score", True),
    ("received_at", False),
    ("study_id", False),
)


def sort_key(place: ListPlace) -> tuple[tuple[bool, float], ...]:
    """``place``'s key in :data:`WORKLIST_ORDER`; missing values sort last."""
    key: list[tuple[bool, float]] = []
    for name, descending in WORKLIST_ORDER:
        value = getattr(place, name)
        if value is None:
            key.append((True, 0.0))
            continue
        number = value.timestamp() if isinstance(value, datetime) else float(value)
        key.append((False, -number if descending else number))
    return tuple(key)


def rank(places: Iterable[ListPlace]) -> list[ListPlace]:
    """Order ``places`` as the worklist shows them."""
    return sorted(places, key=sort_key)


def parse_points(text: str, names: Iterable[str]) -> dict[str, float]:
    """Parse "name=points,..." (e.g. "stat=40,urgent=20") for the settings.

    Args:
        text: comma-separated pairs; a name left out earns 0 points.
        names: the names allowed.

    Raises:
        ValueError: on a malformed pair, an unknown name or a negative value.
    """
    allowed = set(names)
    points: dict[str, float] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or name not in allowed:
            raise ValueError(f"expected one of {sorted(allowed)}=points, got {pair!r}")
        try:
            number = float(value)
        except ValueError as exc:
            raise ValueError(f"{name}: {value.strip()!r} is not a number") from exc
        if number < 0:
            raise ValueError(f"{name}: points must not be negative")
        points[name] = number
    return points


class Band(StrEnum):
    """A coarse label for a score, shown beside it (never colour alone)."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    ROUTINE = "routine"


#: Lowest score of each band, highest band first.
BAND_FLOORS: tuple[tuple[Band, float], ...] = (
    (Band.CRITICAL, 90.0),
    (Band.HIGH, 60.0),
    (Band.MEDIUM, 25.0),
    (Band.ROUTINE, float("-inf")),
)


def band_of(score: float) -> Band:
    """The band a score (points) falls in."""
    return next(band for band, floor in BAND_FLOORS if score >= floor)
