"""The turnaround report's database aggregates against the hand-computed fixture."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.worklist import tat_fixtures as fx
from tests.worklist.report_data import create_fixture_studies
from triage.models import Study
from worklist.reports.turnaround import (
    REPORT_SETTINGS,
    SETTINGS_STATEMENT,
    TurnaroundFilters,
    TurnaroundReport,
    turnaround_report,
)
from worklist.tat import SlaTargets, minutes

pytestmark = pytest.mark.django_db

TARGETS = SlaTargets(fx.SLA_MINUTES, default_minutes=480.0)
RANGE = TurnaroundFilters(start=dt.date(2026, 3, 2), end=dt.date(2026, 3, 4))


@pytest.fixture
def studies() -> dict[str, Study]:
    return create_fixture_studies()


def _report(**filters: object) -> TurnaroundReport:
    return turnaround_report(
        TurnaroundFilters(start=RANGE.start, end=RANGE.end, **filters),  # type: ignore[arg-type]
        TARGETS,
    )


def test_stage_counts_medians_and_p90_match_the_fixture(
    studies: dict[str, Study],
) -> None:
    with CaptureQueriesContext(connection) as queries:
        report = _report()
    report_queries = [
        query
        for query in queries.captured_queries
        if not query["sql"].startswith(SETTINGS_STATEMENT)
    ]
    assert len(report_queries) == 3, report_queries
    assert report.studies == 6
    got = {
        row.stage.code: (
            row.summary.count,
            minutes(row.summary.median_seconds),
            minutes(row.summary.p90_seconds),
        )
        for row in report.stages
    }
    for code, (count, median, p90) in fx.EXPECTED_STAGES.items():
        assert got[code][0] == count, code
        assert got[code][1] == pytest.approx(median, abs=1e-3), code
        assert got[code][2] == pytest.approx(p90, abs=1e-3), code
    count, median, p90 = fx.EXPECTED_REPORT_TAT
    assert report.report_tat.count == count
    assert minutes(report.report_tat.median_seconds) == pytest.approx(median, abs=1e-3)
    assert minutes(report.report_tat.p90_seconds) == pytest.approx(p90, abs=1e-3)


def test_sla_compliance_per_class_matches_the_fixture(
    studies: dict[str, Study],
) -> None:
    report = _report()
    got = {row.patient_class: (row.finalized, row.within_target) for row in report.sla}
    assert got == fx.EXPECTED_SLA
    assert report.sla_overall.finalized == 5
    assert report.sla_overall.within_target == 3
    assert report.sla_overall.share == pytest.approx(0.6)


def test_daily_and_weekly_trends_match_the_fixture(studies: dict[str, Study]) -> None:
    report = _report()
    for points, expected in (
        (report.daily, fx.EXPECTED_DAILY),
        (report.weekly, fx.EXPECTED_WEEKLY),
    ):
        assert [p.period for p in points] == list(expected)
        for point in points:
            n, final, within, median, p90 = expected[point.period]
            assert (point.studies, point.finalized, point.within_target) == (
                n,
                final,
                within,
            )
            for got, want in ((point.median_seconds, median), (point.p90_seconds, p90)):
                if want is None:
                    assert got is None
                else:
                    assert minutes(got) == pytest.approx(want, abs=1e-3)


def test_outliers_are_the_slowest_finalized_studies(studies: dict[str, Study]) -> None:
    report = _report()
    ids = {study.pk: name for name, study in studies.items()}
    assert tuple(ids[o.study_id] for o in report.outliers) == fx.EXPECTED_OUTLIERS
    worst = report.outliers[0]
    assert minutes(worst.sla_seconds) == pytest.approx(250, abs=1e-3)
    assert worst.target_minutes == 240
    assert minutes(worst.over_target_seconds) == pytest.approx(10, abs=1e-3)
    assert worst.radiologist == "dr_a"


@pytest.mark.parametrize(
    ("filters", "names"),
    [
        ({"modality": "CT"}, {"A", "B", "E", "F"}),  # F is CT\SR
        ({"modality": "SR"}, {"F"}),
        ({"patient_class": "emergency"}, {"A", "B"}),
        ({"order_priority": "routine"}, {"C", "D", "F"}),
    ],
)
def test_filters_narrow_the_studies(
    studies: dict[str, Study], filters: dict[str, object], names: set[str]
) -> None:
    assert _report(**filters).studies == len(names)


def test_radiologist_filter_gives_that_readers_figures(
    studies: dict[str, Study],
) -> None:
    reader = User.objects.get(username="dr_a")
    report = _report(radiologist_id=reader.pk)
    assert report.studies == 2  # A and E
    total = next(r for r in report.stages if r.stage.code == "total").summary
    # A 45 and E 250 minutes: median 147.5, p90 45 + 0.9 * 205 = 229.5
    assert minutes(total.median_seconds) == pytest.approx(147.5, abs=1e-3)
    assert minutes(total.p90_seconds) == pytest.approx(229.5, abs=1e-3)


def test_an_empty_range_gives_empty_figures(studies: dict[str, Study]) -> None:
    report = turnaround_report(
        TurnaroundFilters(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 31)),
        TARGETS,
    )
    assert report.studies == 0
    assert all(row.summary.count == 0 for row in report.stages)
    assert all(row.summary.median_seconds is None for row in report.stages)
    assert report.daily == ()
    assert report.outliers == ()


@pytest.mark.django_db(transaction=True)
def test_committed_studies_give_the_same_figures_outside_a_transaction(
    studies: dict[str, Study],
) -> None:
    # On PostgreSQL this takes the concurrent path: one connection per query.
    report = _report()
    assert report.studies == 6
    count, median, p90 = fx.EXPECTED_REPORT_TAT
    assert report.report_tat.count == count
    assert minutes(report.report_tat.median_seconds) == pytest.approx(median, abs=1e-3)
    assert minutes(report.report_tat.p90_seconds) == pytest.approx(p90, abs=1e-3)
    assert [p.studies for p in report.daily] == [3, 2, 1]
    assert report.outliers[0].study_id == studies["E"].pk


def test_ai_flagged_studies_are_compared_with_the_others(
    studies: dict[str, Study],
) -> None:
    report = _report()
    got = {
        c.flagged: (
            c.studies,
            minutes(c.to_open.median_seconds),
            minutes(c.to_open.p90_seconds),
            minutes(c.report_tat.median_seconds),
            minutes(c.report_tat.p90_seconds),
        )
        for c in report.by_flag
    }
    assert [c.flagged for c in report.by_flag] == [True, False]
    for flagged, expected in fx.EXPECTED_BY_FLAG.items():
        assert got[flagged][0] == expected[0]
        assert got[flagged][1:] == pytest.approx(expected[1:], abs=1e-3)


@pytest.mark.parametrize(("flagged", "count"), [(True, 2), (False, 4)])
def test_the_ai_flag_filter_splits_the_studies(
    studies: dict[str, Study], flagged: bool, count: int
) -> None:
    assert _report(ai_flagged=flagged).studies == count


@pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="PostgreSQL planner settings (tests/integration runs this there)",
)
def test_the_reports_planner_settings_do_not_outlive_the_report(
    studies: dict[str, Study],
) -> None:
    def current() -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT " + ", ".join(["current_setting(%s)"] * len(REPORT_SETTINGS)),
                list(REPORT_SETTINGS),
            )
            row = cursor.fetchone()
        return dict(zip(REPORT_SETTINGS, row, strict=True))

    before = current()
    assert before != REPORT_SETTINGS
    _report()
    assert current() == before
