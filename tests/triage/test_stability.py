"""The stability rules, plain Python: quiet periods per modality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.stability import (
    Arrivals,
    StabilityRules,
    StableBy,
    becomes_stable,
    is_stable,
    parse_stability_seconds,
    split_modalities,
    stable_by,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = parse_stability_seconds("CT=10,MR=30,CR=5,*=15")


def test_rules_are_parsed_per_modality_with_a_default() -> None:
    assert StabilityRules((("CR", 5.0), ("CT", 10.0), ("MR", 30.0)), 15.0, 2.0) == RULES
    assert RULES.quiet_seconds("ct") == 10
    assert RULES.quiet_seconds("US") == 15


def test_the_default_is_fifteen_seconds_when_not_given() -> None:
    assert parse_stability_seconds("CT=3").default_seconds == 15


@pytest.mark.parametrize(
    "text",
    ["CT", "CT=", "CT=ten", "CT=-1", "=5", "C-T=5", "CT=5,CT=6", "CT=100000"],
)
def test_malformed_rules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_stability_seconds(text)


@pytest.mark.parametrize(
    ("modalities", "seconds"),
    [(("CT",), 10), (("CT", "SR"), 15), (("MR", "CT"), 30), ((), 15)],
)
def test_the_slowest_modality_of_a_study_governs(
    modalities: tuple[str, ...], seconds: float
) -> None:
    assert RULES.quiet_period(modalities) == timedelta(seconds=seconds)


def test_the_sweep_starts_from_the_shortest_quiet_period() -> None:
    assert RULES.shortest_quiet_period() == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("quiet_for", "stable"),
    [(timedelta(seconds=9.9), False), (timedelta(seconds=10), True)],
)
def test_a_study_is_stable_once_quiet_for_its_period(
    quiet_for: timedelta, stable: bool
) -> None:
    arrivals = Arrivals(("CT",), NOW - quiet_for, None)
    assert is_stable(arrivals, RULES, NOW) is stable
    assert becomes_stable(arrivals, RULES, NOW) is stable


def test_a_study_declared_stable_does_not_become_stable_again() -> None:
    arrivals = Arrivals(("CT",), NOW - timedelta(minutes=5), NOW - timedelta(minutes=4))
    assert is_stable(arrivals, RULES, NOW)
    assert not becomes_stable(arrivals, RULES, NOW)


def test_a_study_without_instances_is_never_stable() -> None:
    assert not is_stable(Arrivals(("CT",), None, None), RULES, NOW)


def test_modalities_are_split_as_stored() -> None:
    assert split_modalities("CT\\SR") == ("CT", "SR")
    assert split_modalities("") == ()


def series(
    last: timedelta, study_last: timedelta | None, modality: str = "CT"
) -> Arrivals:
    """A series whose last instance came ``last`` ago, its study's ``study_last``."""
    return Arrivals(
        (modality,),
        NOW - last,
        None,
        None if study_last is None else NOW - study_last,
    )


@pytest.mark.parametrize(
    ("arrivals", "why"),
    [
        # The study moved on to another series: complete after the grace.
        (series(timedelta(seconds=2), timedelta(seconds=1)), StableBy.HANDOVER),
        (series(timedelta(seconds=1.9), timedelta(seconds=1)), None),
        # Nothing arrived after it: its own quiet period still governs.
        (series(timedelta(seconds=5), timedelta(seconds=5)), None),
        (series(timedelta(seconds=5), None), None),
        (series(timedelta(seconds=10), timedelta(seconds=10)), StableBy.QUIET),
        # Quiet long enough either way: the quiet period is the reason given.
        (series(timedelta(seconds=12), timedelta(seconds=1)), StableBy.QUIET),
        # Its own modality's period, shorter than a study with MR would wait.
        (series(timedelta(seconds=5), None, "CR"), StableBy.QUIET),
    ],
)
def test_a_series_is_complete_by_quiet_or_by_handover(
    arrivals: Arrivals, why: StableBy | None
) -> None:
    assert stable_by(arrivals, RULES, NOW) is why
    assert is_stable(arrivals, RULES, NOW) is (why is not None)
    assert becomes_stable(arrivals, RULES, NOW) is (why is not None)


def test_a_handover_series_declared_stable_does_not_become_stable_again() -> None:
    arrivals = Arrivals(("CT",), NOW - timedelta(seconds=3), NOW, NOW)
    assert is_stable(arrivals, RULES, NOW)
    assert not becomes_stable(arrivals, RULES, NOW)


def test_a_study_is_never_handed_over() -> None:
    # A study's own last arrival is its study's: nothing came after it.
    last = NOW - timedelta(seconds=5)
    assert stable_by(Arrivals(("CT",), last, None, last), RULES, NOW) is None


def test_the_handover_grace_is_configurable_and_can_be_outlasted() -> None:
    slow = parse_stability_seconds("CT=10", handover_seconds=30)
    assert slow.handover_seconds == 30
    # At or above the quiet period, the handover never shortens it.
    assert stable_by(series(timedelta(seconds=9), timedelta(0)), slow, NOW) is None
    assert stable_by(series(timedelta(seconds=10), timedelta(0)), slow, NOW) is (
        StableBy.QUIET
    )


@pytest.mark.parametrize("seconds", [-1.0, 86400.0])
def test_a_handover_grace_out_of_range_is_refused(seconds: float) -> None:
    with pytest.raises(ValueError, match="handover"):
        parse_stability_seconds("CT=10", handover_seconds=seconds)


def test_the_series_sweep_starts_from_the_handover_when_it_is_shorter() -> None:
    assert RULES.shortest_series_wait() == timedelta(seconds=2)
    slow = parse_stability_seconds("CT=10,CR=5", handover_seconds=30)
    assert slow.shortest_series_wait() == timedelta(seconds=5)
