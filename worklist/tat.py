"""Turnaround-time (TAT) maths: stages, percentiles, SLA shares and drift (PSI).

Plain Python, no framework imports: the database computes the same figures with
aggregates, and the tests hold both to the definitions written here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

SECONDS_PER_MINUTE = 60.0
# Above this population stability index a score distribution has drifted enough
# to look at (the usual rule of thumb: < 0.1 stable, 0.1-0.2 moderate, > 0.2 large).
DEFAULT_PSI_WARNING = 0.2
# A bin that holds no study would make the PSI infinite; its share is floored here.
PSI_EMPTY_BIN_SHARE = 1e-4


class Milestone(StrEnum):
    """A moment on a study's timeline, as recorded by the service that reached it."""

    ACQUIRED = "acquired"  # the modality says the images were taken
    RECEIVED = "received"  # the first instance reached RadTriage
    STABLE = "stable"  # no instance arrived for the modality's quiet period
    SCORED = "scored"  # the AI finished scoring
    OPENED = "opened"  # a radiologist first opened the study
    FINAL = "final"  # the report was finalized


@dataclass(frozen=True, slots=True)
class Stage:
    """The interval between two milestones, as the reports show it.

    Attributes:
        starts: the milestone that opens the stage; where several are given,
            the first one the study has reached (a fallback for missing data).
        end: the milestone that closes it.
    """

    code: str
    label: str
    starts: tuple[Milestone, ...]
    end: Milestone

    @property
    def start(self) -> Milestone:
        """The stage's usual opening milestone (the first of ``starts``)."""
        return self.starts[0]


STAGES: tuple[Stage, ...] = (
    Stage("transfer", "Acquired → received", (Milestone.ACQUIRED,), Milestone.RECEIVED),
    Stage("arrival", "Received → stable", (Milestone.RECEIVED,), Milestone.STABLE),
    Stage("scoring", "Stable → scored", (Milestone.STABLE,), Milestone.SCORED),
    Stage("waiting", "Scored → opened", (Milestone.SCORED,), Milestone.OPENED),
    Stage("reading", "Opened → final", (Milestone.OPENED,), Milestone.FINAL),
    # The report turnaround, on which SLAs are judged: the clock starts when the
    # exam was acquired or, where the modality did not say, when its first image
    # arrived; it stops when the report is final.
    Stage(
        "total",
        "Acquired → final",
        (Milestone.ACQUIRED, Milestone.RECEIVED),
        Milestone.FINAL,
    ),
)
STAGES_BY_CODE: dict[str, Stage] = {stage.code: stage for stage in STAGES}
REPORT_TAT = STAGES_BY_CODE["total"]
# How long a study waited for a reader: where AI triage should show its effect.
TIME_TO_OPEN = Stage(
    "to_open", "Received → opened", (Milestone.RECEIVED,), Milestone.OPENED
)


@dataclass(frozen=True, slots=True)
class Timeline:
    """One study's milestones; None where the study has not reached it."""

    times: Mapping[Milestone, datetime | None]

    def at(self, milestone: Milestone) -> datetime | None:
        """When the study reached ``milestone`` (aware), or None."""
        return self.times.get(milestone)


def stage_seconds(timeline: Timeline, stage: Stage) -> float | None:
    """How long one study spent in a stage.

    Returns:
        Seconds from the stage's start milestone to its end milestone, or None
        when either is missing or the end precedes the start (a modality clock
        ahead of ours): such a study is left out of that stage, not counted as 0.
    """
    start = next((t for m in stage.starts if (t := timeline.at(m)) is not None), None)
    end = timeline.at(stage.end)
    if start is None or end is None or end < start:
        return None
    return (end - start).total_seconds()


def sla_seconds(timeline: Timeline) -> float | None:
    """Seconds on the SLA clock (the report turnaround), None while not final."""
    return stage_seconds(timeline, REPORT_TAT)


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The continuous percentile of ``values`` at ``fraction`` (0 to 1).

    Linear interpolation between the closest ranks (Hyndman and Fan type 7, as
    PostgreSQL's ``percentile_cont`` and NumPy's default): with the n values
    sorted as x[0] <= ... <= x[n-1] and h = (n - 1) * fraction, the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). So the median
    of 1, 2, 3, 4 is 2.5 and their 90th percentile is 3.7.

    Returns:
        The percentile in the values' unit, or None for no values.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    ordered = sorted(values)
    if not ordered:
        return None
    h = (len(ordered) - 1) * fraction
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


class PercentileAccumulator:
    """A streaming aggregate (step/finalize) giving :func:`percentile`.

    Databases without ``percentile_cont`` (SQLite) register it as an aggregate
    function, so one definition serves both engines.
    """

    def __init__(self) -> None:
        """Start with no values."""
        self._values: list[float] = []
        self._fraction: float | None = None

    def step(self, value: float | None, fraction: float) -> None:
        """Add one row's value (NULL is skipped) and the fraction (0 to 1)."""
        self._fraction = fraction
        if value is not None:
            self._values.append(float(value))

    def finalize(self) -> float | None:
        """The percentile of the values added, or None for none."""
        if self._fraction is None:
            return None
        return percentile(self._values, self._fraction)


@dataclass(frozen=True, slots=True)
class StageSummary:
    """Count, median and 90th percentile of one stage, in seconds."""

    count: int
    median_seconds: float | None
    p90_seconds: float | None


def summarise(durations: Sequence[float]) -> StageSummary:
    """Summarise a stage's durations (seconds) as the reports show them."""
    return StageSummary(
        count=len(durations),
        median_seconds=percentile(durations, 0.5),
        p90_seconds=percentile(durations, 0.9),
    )


@dataclass(frozen=True, slots=True)
class SlaTargets:
    """Report-turnaround targets in minutes per patient class (an input)."""

    minutes_by_class: Mapping[str, float]
    default_minutes: float

    def minutes_for(self, patient_class: str) -> float:
        """Target minutes of ``patient_class``, else the default target."""
        return self.minutes_by_class.get(patient_class, self.default_minutes)


@dataclass(frozen=True, slots=True)
class SlaCompliance:
    """How many finalized studies of one class met their target."""

    patient_class: str
    target_minutes: float
    finalized: int
    within_target: int

    @property
    def share(self) -> float | None:
        """Fraction (0 to 1) of finalized studies within target; None if none."""
        if self.finalized == 0:
            return None
        return self.within_target / self.finalized


def within_target(seconds: float, target_minutes: float) -> bool:
    """Whether a report TAT meets its target; exactly on target counts as met."""
    return seconds <= target_minutes * SECONDS_PER_MINUTE


def minutes(seconds: float | None) -> float | None:
    """Seconds to minutes, keeping None."""
    return None if seconds is None else seconds / SECONDS_PER_MINUTE


def score_bin_edges(bins: int = 10) -> tuple[float, ...]:
    """Equal-width bin edges over probabilities [0, 1] for drift monitoring."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    return tuple(i / bins for i in range(bins + 1))


def bin_counts(values: Sequence[float], edges: Sequence[float]) -> tuple[int, ...]:
    """Counts of values per bin; bins are [lo, hi), the last one closed."""
    counts = [0] * (len(edges) - 1)
    for value in values:
        for i in range(len(counts)):
            last = i == len(counts) - 1
            if edges[i] <= value < edges[i + 1] or (last and value == edges[-1]):
                counts[i] += 1
                break
    return tuple(counts)


def population_stability_index(
    expected_counts: Sequence[int], actual_counts: Sequence[int]
) -> float | None:
    """Population stability index between two binned score distributions.

    PSI = sum over bins of (a - e) * ln(a / e), where e and a are the bin's
    shares of the expected (validation baseline) and actual (recent) studies;
    an empty bin's share is floored at 1e-4 so the sum stays finite.
    0 means identical; above 0.2 is conventionally a large shift.

    Returns:
        The PSI (dimensionless, >= 0), or None when either side has no studies.
    """
    if len(expected_counts) != len(actual_counts):
        raise ValueError("both distributions need the same bins")
    expected_total, actual_total = sum(expected_counts), sum(actual_counts)
    if expected_total == 0 or actual_total == 0:
        return None
    psi = 0.0
    for e_count, a_count in zip(expected_counts, actual_counts, strict=True):
        e = max(e_count / expected_total, PSI_EMPTY_BIN_SHARE)
        a = max(a_count / actual_total, PSI_EMPTY_BIN_SHARE)
        psi += (a - e) * math.log(a / e)
    return psi


DEFAULT_SLA_MINUTES = "emergency=60,inpatient=240,outpatient=1440,unknown=480"


def parse_sla_minutes(text: str) -> dict[str, float]:
    """Parse "class=minutes,..." (e.g. "emergency=60,inpatient=240").

    Raises:
        ValueError: on a malformed pair or a target that is not a positive number.
    """
    targets: dict[str, float] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"expected class=minutes, got {pair.strip()!r}")
        try:
            target = float(value)
        except ValueError as exc:
            raise ValueError(f"{name.strip()}: {value.strip()!r} is no number") from exc
        if not math.isfinite(target) or target <= 0:
            raise ValueError(f"{name.strip()}: the target must be positive minutes")
        targets[name.strip()] = target
    return targets
