"""The stability rules, plain Python: quiet periods per modality."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from triage.stability import (
    Arrivals,
    StabilityRules,
    becomes_stable,
    is_stable,
    parse_stability_seconds,
    split_modalities,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = parse_stability_seconds("CT=10,MR=30,CR=5,*=15")


def test_rules_are_parsed_per_modality_with_a_default() -> None:
    assert StabilityRules((("CR", 5.0), ("CT", 10.0), ("MR", 30.0)), 15.0) == RULES
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
