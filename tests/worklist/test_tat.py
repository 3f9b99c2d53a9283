"""The TAT maths, checked against figures computed by hand (no database)."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest

from tests.worklist import tat_fixtures as fx
from worklist import tat


def _timeline(study: fx.FixtureStudy) -> tat.Timeline:
    times = study.times()
    return tat.Timeline(
        {
            tat.Milestone.ACQUIRED: times["acquired_at"],
            tat.Milestone.RECEIVED: times["first_instance_received_at"],
            tat.Milestone.STABLE: times["stable_at"],
            tat.Milestone.SCORED: times["scored_at"],
            tat.Milestone.OPENED: times["first_opened_at"],
            tat.Milestone.FINAL: times["finalized_at"],
        }
    )


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([1, 2, 3, 4], 0.5, 2.5),
        ([1, 2, 3, 4], 0.9, 3.7),
        ([4, 1, 3, 2], 0.9, 3.7),  # order does not matter
        ([7], 0.5, 7.0),
        ([7], 0.9, 7.0),
        ([1, 2, 4, 10], 0.9, 8.2),
        ([10, 20], 0.0, 10.0),
        ([10, 20], 1.0, 20.0),
    ],
)
def test_percentile_interpolates_linearly_between_closest_ranks(
    values: list[float], fraction: float, expected: float
) -> None:
    assert tat.percentile(values, fraction) == pytest.approx(expected)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.95, 1.0])
def test_percentile_agrees_with_numpy_linear_method(fraction: float) -> None:
    values = [3.0, 17.5, 2.0, 99.0, 41.0, 41.0, 8.25, 60.0, 1.0]
    assert tat.percentile(values, fraction) == pytest.approx(
        float(np.percentile(values, fraction * 100, method="linear"))
    )


def test_percentile_of_nothing_is_none_and_fraction_is_checked() -> None:
    assert tat.percentile([], 0.5) is None
    with pytest.raises(ValueError, match="fraction"):
        tat.percentile([1.0], 1.5)


def test_accumulator_skips_nulls_like_an_sql_aggregate() -> None:
    acc = tat.PercentileAccumulator()
    for value in (4.0, None, 1.0, 3.0, None, 2.0):
        acc.step(value, 0.9)
    assert acc.finalize() == pytest.approx(3.7)
    assert tat.PercentileAccumulator().finalize() is None


def test_stage_seconds_leaves_out_missing_and_negative_intervals() -> None:
    received = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    timeline = tat.Timeline(
        {
            tat.Milestone.ACQUIRED: received + dt.timedelta(minutes=2),
            tat.Milestone.RECEIVED: received,
            tat.Milestone.STABLE: received + dt.timedelta(seconds=90),
        }
    )
    by_code = tat.STAGES_BY_CODE
    assert tat.stage_seconds(timeline, by_code["transfer"]) is None  # clock skew
    assert tat.stage_seconds(timeline, by_code["arrival"]) == 90.0
    assert tat.stage_seconds(timeline, by_code["scoring"]) is None  # not scored


def test_stages_follow_the_timeline_from_acquisition_to_final() -> None:
    chain = [s for s in tat.STAGES if s.code != "total"]
    assert [s.start for s in chain[1:]] == [s.end for s in chain[:-1]]
    assert chain[0].start is tat.Milestone.ACQUIRED
    assert chain[-1].end is tat.Milestone.FINAL


@pytest.mark.parametrize("code", list(fx.EXPECTED_STAGES))
def test_stage_summaries_match_the_hand_computed_fixture(code: str) -> None:
    stage = tat.STAGES_BY_CODE[code]
    durations = [
        seconds
        for study in fx.STUDIES
        if (seconds := tat.stage_seconds(_timeline(study), stage)) is not None
    ]
    summary = tat.summarise(durations)
    count, median, p90 = fx.EXPECTED_STAGES[code]
    assert summary.count == count
    assert tat.minutes(summary.median_seconds) == pytest.approx(median)
    assert tat.minutes(summary.p90_seconds) == pytest.approx(p90)


def test_sla_clock_and_compliance_match_the_hand_computed_fixture() -> None:
    targets = tat.SlaTargets(fx.SLA_MINUTES, default_minutes=480.0)
    clocks = {s.name: tat.sla_seconds(_timeline(s)) for s in fx.STUDIES}
    assert clocks["D"] is None  # not final
    assert clocks["C"] == 180 * 60  # no acquisition time: clock starts on arrival
    finished = [c for c in clocks.values() if c is not None]
    count, median, p90 = fx.EXPECTED_REPORT_TAT
    summary = tat.summarise(finished)
    assert (summary.count, tat.minutes(summary.median_seconds)) == (count, median)
    assert tat.minutes(summary.p90_seconds) == pytest.approx(p90)
    for name, (finalized, within) in fx.EXPECTED_SLA.items():
        mine = [
            clocks[s.name]
            for s in fx.STUDIES
            if s.patient_class == name and clocks[s.name] is not None
        ]
        met = sum(tat.within_target(c, targets.minutes_for(name)) for c in mine if c)
        result = tat.SlaCompliance(name, targets.minutes_for(name), len(mine), met)
        assert (result.finalized, result.within_target) == (finalized, within)
    assert tat.SlaCompliance("emergency", 60, 2, 1).share == 0.5
    assert tat.SlaCompliance("unknown", 480, 0, 0).share is None


def test_exactly_on_target_counts_as_met() -> None:
    assert tat.within_target(3600.0, 60.0)
    assert not tat.within_target(3600.001, 60.0)


def test_population_stability_index_by_hand() -> None:
    # Shares 0.5/0.5 against 0.25/0.75:
    # (0.25 - 0.5) ln(0.5) + (0.75 - 0.5) ln(1.5) = 0.25 ln 3 = 0.27465
    assert tat.population_stability_index([50, 50], [25, 75]) == pytest.approx(
        0.25 * math.log(3)
    )
    assert tat.population_stability_index([10, 20, 30], [1, 2, 3]) == 0.0
    assert tat.population_stability_index([0, 0], [1, 1]) is None


def test_population_stability_index_floors_empty_bins() -> None:
    psi = tat.population_stability_index([100, 0], [50, 50])
    assert psi is not None
    e, a = (1.0, 1e-4), (0.5, 0.5)
    expected = sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True))
    assert psi == pytest.approx(expected)
    assert psi > tat.DEFAULT_PSI_WARNING


def test_bin_counts_close_the_last_bin() -> None:
    edges = tat.score_bin_edges(4)
    assert edges == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert tat.bin_counts([0.0, 0.25, 0.3, 0.99, 1.0], edges) == (1, 2, 0, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("emergency=60,inpatient=240", {"emergency": 60.0, "inpatient": 240.0}),
        (" outpatient = 1440 , ", {"outpatient": 1440.0}),
    ],
)
def test_sla_targets_parse_from_settings_text(
    text: str, expected: dict[str, float]
) -> None:
    assert tat.parse_sla_minutes(text) == expected


@pytest.mark.parametrize("text", ["emergency", "emergency=soon", "emergency=0", "=5"])
def test_bad_sla_targets_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        tat.parse_sla_minutes(text)
