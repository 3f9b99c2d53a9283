"""The turnaround report as one tidy CSV table (one figure set per row)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from worklist.reports.turnaround import TrendPoint, TurnaroundReport
from worklist.tat import StageSummary, minutes

CSV_COLUMNS = (
    "section",
    "group",
    "count",
    "median_minutes",
    "p90_minutes",
    "finalized",
    "within_target",
    "target_minutes",
    "share_within_target",
)


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _share(within: int, finalized: int) -> str:
    return "" if finalized == 0 else f"{within / finalized:.4f}"


def _summary(section: str, group: str, summary: StageSummary) -> list[str]:
    return [
        section,
        group,
        str(summary.count),
        _num(minutes(summary.median_seconds)),
        _num(minutes(summary.p90_seconds)),
        "",
        "",
        "",
        "",
    ]


def _trend(section: str, point: TrendPoint) -> list[str]:
    return [
        section,
        point.period.isoformat(),
        str(point.studies),
        _num(minutes(point.median_seconds)),
        _num(minutes(point.p90_seconds)),
        str(point.finalized),
        str(point.within_target),
        "",
        _share(point.within_target, point.finalized),
    ]


def csv_rows(report: TurnaroundReport) -> Iterator[list[str]]:
    """Rows: stages, report TAT, SLA per class, AI-flagged against not flagged
    (received -> opened and report TAT), daily and weekly trends.

    Times are minutes; ``count`` is studies with the interval (stages) or
    studies received (trends); shares are fractions from 0 to 1.
    """
    yield list(CSV_COLUMNS)
    for row in report.stages:
        yield _summary("stage", row.stage.code, row.summary)
    yield _summary("report_tat", "all", report.report_tat)
    for sla in report.sla:
        yield [
            "sla",
            sla.patient_class,
            "",
            "",
            "",
            str(sla.finalized),
            str(sla.within_target),
            _num(sla.target_minutes),
            _share(sla.within_target, sla.finalized),
        ]
    for comparison in report.by_flag:
        group = "flagged" if comparison.flagged else "not_flagged"
        yield _summary("ai_flag_to_open", group, comparison.to_open)
        yield _summary("ai_flag_report_tat", group, comparison.report_tat)
    for point in report.daily:
        yield _trend("daily", point)
    for point in report.weekly:
        yield _trend("weekly", point)


def to_csv(report: TurnaroundReport) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(csv_rows(report))
    return buffer.getvalue()
