"""When a study (or one of its series) has stopped receiving instances.

A modality sends a study as a burst of instances with no "end of study" marker,
so RadTriage waits for a quiet period: a study is *stable* when no instance of
it has arrived for N seconds, N depending on its modalities. A series is stable
on the same rule applied to its own arrivals (its own modality's period, which
may be shorter than its study's), so that a model needing only one series may
start before the rest of the study (a dose report, a late reformat) has
arrived; the study's stability still follows and the scoring amends its result
then.

The content can tell more than the clock: modalities send series one after
another, so once another series of the study has received instances after a
series' last one, that series is complete after a short grace (the *handover*)
rather than its full quiet period.

Plain Python: no framework imports; the current time is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

#: Key of the quiet period used for modalities without their own entry.
ANY_MODALITY = "*"

#: Quiet periods (seconds) when RADTRIAGE_STABILITY_SECONDS is not set.
DEFAULT_STABILITY_SECONDS = "CT=10,MR=30,CR=5,DX=5,*=15"

#: Handover grace (seconds) when RADTRIAGE_SERIES_HANDOVER_SECONDS is not set.
DEFAULT_HANDOVER_SECONDS = 2.0


class StableBy(StrEnum):
    """Why a study or series is stable."""

    #: Nothing arrived for its modality's quiet period.
    QUIET = "quiet"
    #: A series: another series of its study received instances after its last
    #: one, and it has been quiet for the handover grace.
    HANDOVER = "handover"


@dataclass(frozen=True, slots=True)
class StabilityRules:
    """Quiet periods per modality.

    Attributes:
        by_modality: (DICOM Modality, seconds) pairs, modality in upper case.
        default_seconds: quiet period of modalities not listed, in seconds.
        handover_seconds: quiet time after which a series is complete once
            its study has moved on to another series, in seconds. At or above
            the quiet periods it never shortens them.
    """

    by_modality: tuple[tuple[str, float], ...]
    default_seconds: float
    handover_seconds: float = DEFAULT_HANDOVER_SECONDS

    def quiet_seconds(self, modality: str) -> float:
        """Seconds without arrivals after which a ``modality`` series is stable."""
        wanted = modality.strip().upper()
        for name, seconds in self.by_modality:
            if name == wanted:
                return seconds
        return self.default_seconds

    def quiet_period(self, modalities: Iterable[str]) -> timedelta:
        """The quiet period of a study holding ``modalities``.

        The slowest modality governs: a CT study with an SR dose report waits as
        long as the longer of the two. A study with no known modality waits the
        default.
        """
        seconds = [self.quiet_seconds(m) for m in modalities if m.strip()]
        return timedelta(seconds=max(seconds, default=self.default_seconds))

    def shortest_quiet_period(self) -> timedelta:
        """The shortest quiet period of any modality: the sweep's first cut."""
        seconds = [s for _, s in self.by_modality]
        return timedelta(seconds=min([*seconds, self.default_seconds]))

    def shortest_series_wait(self) -> timedelta:
        """The least quiet time after which a series may be stable: the series
        sweep's first cut (the handover grace or the shortest quiet period)."""
        handover = timedelta(seconds=self.handover_seconds)
        return min(handover, self.shortest_quiet_period())


def parse_stability_seconds(
    text: str, *, handover_seconds: float = DEFAULT_HANDOVER_SECONDS
) -> StabilityRules:
    """Parse ``"CT=10,MR=30,*=15"`` into rules.

    Args:
        text: comma-separated ``MODALITY=SECONDS`` pairs; ``*`` names the
            default for other modalities (15 s when absent). Seconds are
            non-negative numbers.
        handover_seconds: the series handover grace, in seconds (0 to 86400).

    Raises:
        ValueError: an entry is malformed, negative or repeated, or the
            handover grace is out of range.
    """
    if not 0 <= handover_seconds < 86400:
        raise ValueError(
            f"handover seconds out of range (0 to 86400): {handover_seconds}"
        )
    pairs: dict[str, float] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, value = entry.partition("=")
        modality = name.strip().upper()
        if not sep or not modality:
            raise ValueError(f"expected MODALITY=SECONDS, got {entry!r}")
        if modality != ANY_MODALITY and not modality.isalnum():
            raise ValueError(f"not a DICOM modality: {modality!r}")
        try:
            seconds = float(value)
        except ValueError as exc:
            raise ValueError(f"not a number of seconds: {value.strip()!r}") from exc
        if not 0 <= seconds < 86400:
            raise ValueError(f"seconds out of range (0 to 86400): {seconds}")
        if modality in pairs:
            raise ValueError(f"{modality} is given twice")
        pairs[modality] = seconds
    default = pairs.pop(ANY_MODALITY, 15.0)
    return StabilityRules(tuple(sorted(pairs.items())), default, handover_seconds)


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What the rules need to know of a study or a series.

    Attributes:
        modalities: DICOM modalities of its instances (one for a series).
        last_instance_received_at: when its latest instance arrived (aware).
        stable_at: when it was last declared stable, None while receiving.
        study_last_instance_received_at: for a series, when the latest
            instance of its whole study arrived (aware): later than its own
            last one means another series has received since. None for a
            study.
    """

    modalities: tuple[str, ...]
    last_instance_received_at: datetime | None
    stable_at: datetime | None
    study_last_instance_received_at: datetime | None = None


def stable_by(
    arrivals: Arrivals, rules: StabilityRules, now: datetime
) -> StableBy | None:
    """Why it is stable at ``now``, or None while it may still be receiving.

    Quiet for its modalities' period; or, for a series, handed over: another
    series of the study has received since its last instance and it has been
    quiet for the handover grace. A study (or series) that never received an
    instance is not stable: there is nothing to score.
    """
    last = arrivals.last_instance_received_at
    if last is None:
        return None
    quiet = now - last
    if quiet >= rules.quiet_period(arrivals.modalities):
        return StableBy.QUIET
    study_last = arrivals.study_last_instance_received_at
    if (
        study_last is not None
        and study_last > last
        and quiet >= timedelta(seconds=rules.handover_seconds)
    ):
        return StableBy.HANDOVER
    return None


def is_stable(arrivals: Arrivals, rules: StabilityRules, now: datetime) -> bool:
    """Whether it is stable at ``now`` (see :func:`stable_by`)."""
    return stable_by(arrivals, rules, now) is not None


def becomes_stable(arrivals: Arrivals, rules: StabilityRules, now: datetime) -> bool:
    """Whether to declare it stable now: quiet long enough and not yet declared.

    Late instances clear ``stable_at`` (the study or series is reopened), so this
    is true once per quiet period that follows a burst of arrivals.
    """
    return arrivals.stable_at is None and is_stable(arrivals, rules, now)


def split_modalities(value: str) -> tuple[str, ...]:
    """DICOM ModalitiesInStudy as stored (``"CT\\\\SR"``) as a tuple."""
    return tuple(m for m in value.split("\\") if m)
