"""When a study (or one of its series) has stopped receiving instances.

A modality sends a study as a burst of instances with no "end of study" marker,
so RadTriage waits for a quiet period: a study is *stable* when no instance of
it has arrived for N seconds, N depending on its modalities. A series is stable
on the same rule applied to its own arrivals, so that a model needing only one
series may start before the rest of the study (a dose report, a late
reformat) has arrived; the study's stability still follows and the scoring
issue amends its result then.

Plain Python: no framework imports; the current time is always passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Key of the quiet period used for modalities without their own entry.
ANY_MODALITY = "*"

#: Quiet periods (seconds) when RADTRIAGE_STABILITY_SECONDS is not set.
DEFAULT_STABILITY_SECONDS = "CT=10,MR=30,CR=5,DX=5,*=15"


@dataclass(frozen=True, slots=True)
class StabilityRules:
    """Quiet periods per modality.

    Attributes:
        by_modality: (DICOM Modality, seconds) pairs, modality in upper case.
        default_seconds: quiet period of modalities not listed, in seconds.
    """

    by_modality: tuple[tuple[str, float], ...]
    default_seconds: float

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


def parse_stability_seconds(text: str) -> StabilityRules:
    """Parse ``"CT=10,MR=30,*=15"`` into rules.

    Args:
        text: comma-separated ``MODALITY=SECONDS`` pairs; ``*`` names the
            default for other modalities (15 s when absent). Seconds are
            non-negative numbers.

    Raises:
        ValueError: an entry is malformed, negative or repeated.
    """
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
    return StabilityRules(tuple(sorted(pairs.items())), default)


@dataclass(frozen=True, slots=True)
class Arrivals:
    """What the rules need to know of a study or a series.

    Attributes:
        modalities: DICOM modalities of its instances (one for a series).
        last_instance_received_at: when its latest instance arrived (aware).
        stable_at: when it was last declared stable, None while receiving.
    """

    modalities: tuple[str, ...]
    last_instance_received_at: datetime | None
    stable_at: datetime | None


def is_stable(arrivals: Arrivals, rules: StabilityRules, now: datetime) -> bool:
    """Whether the quiet period has passed since the last arrival.

    A study (or series) that never received an instance is not stable: there is
    nothing to score.
    """
    last = arrivals.last_instance_received_at
    if last is None:
        return False
    return now - last >= rules.quiet_period(arrivals.modalities)


def becomes_stable(arrivals: Arrivals, rules: StabilityRules, now: datetime) -> bool:
    """Whether to declare it stable now: quiet long enough and not yet declared.

    Late instances clear ``stable_at`` (the study or series is reopened), so this
    is true once per quiet period that follows a burst of arrivals.
    """
    return arrivals.stable_at is None and is_stable(arrivals, rules, now)


def split_modalities(value: str) -> tuple[str, ...]:
    """DICOM ModalitiesInStudy as stored (``"CT\\\\SR"``) as a tuple."""
    return tuple(m for m in value.split("\\") if m)
