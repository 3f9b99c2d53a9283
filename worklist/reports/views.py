"""The department head's report pages: parse the filters, compute, render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone

from triage.models import Study
from worklist.reports import charts
from worklist.reports.ai import DRIFT_BINS, AiFilters, AiReport, ai_report
from worklist.reports.export import to_csv
from worklist.reports.forms import AiForm, TurnaroundForm, ai_form, turnaround_form
from worklist.reports.turnaround import (
    MILESTONE_FIELDS,
    TurnaroundReport,
    turnaround_report,
)
from worklist.tat import (
    STAGES,
    SlaTargets,
    Timeline,
    minutes,
    sla_seconds,
    stage_seconds,
)

REPORTS_PERMISSION = "triage.view_reports"


def sla_targets() -> SlaTargets:
    """The site's SLA targets; classes without one get the longest target."""
    by_class: dict[str, float] = dict(settings.RADTRIAGE_SLA_MINUTES)
    return SlaTargets(by_class, default_minutes=max(by_class.values(), default=1440))


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def turnaround_charts(report: TurnaroundReport) -> list[charts.Chart]:
    """Daily report TAT (median and p90), weekly SLA share, median per stage."""
    days = [p.period.strftime("%d %b") for p in report.daily]
    weeks = [p.period.strftime("%d %b") for p in report.weekly]
    return [
        charts.line_chart(
            "Report turnaround by day received (minutes)",
            days,
            [
                ("Median", "median", [minutes(p.median_seconds) for p in report.daily]),
                (
                    "90th percentile",
                    "p90",
                    [minutes(p.p90_seconds) for p in report.daily],
                ),
            ],
            unit=" min",
        ),
        charts.bar_chart(
            "Reports within SLA target by week (%)",
            weeks,
            [_percent(p.share) for p in report.weekly],
            unit="%",
            top=100.0,
        ),
        charts.bar_chart(
            "Median time per stage (minutes)",
            [row.stage.label for row in report.stages],
            [minutes(row.summary.median_seconds) for row in report.stages],
            unit=" min",
        ),
    ]


def _compute(request: HttpRequest) -> tuple[TurnaroundForm, TurnaroundReport | None]:
    form = turnaround_form(request.GET, timezone.localdate())
    if not form.is_valid():
        return form, None
    return form, turnaround_report(form.filters(), sla_targets())


def _page(request: HttpRequest, template: str) -> HttpResponse:
    form, report = _compute(request)
    context: dict[str, Any] = {"form": form, "report": report}
    if report is not None:
        context["charts"] = turnaround_charts(report)
        context["query"] = request.GET.urlencode()
    return render(request, template, context, status=200 if report else 400)


@permission_required(REPORTS_PERMISSION, raise_exception=True)
def turnaround(request: HttpRequest) -> HttpResponse:
    """Turnaround and SLA report for a date range and filters."""
    return _page(request, "worklist/reports.html")


@permission_required(REPORTS_PERMISSION, raise_exception=True)
def turnaround_print(request: HttpRequest) -> HttpResponse:
    """The same report laid out for paper."""
    return _page(request, "worklist/reports_print.html")


@permission_required(REPORTS_PERMISSION, raise_exception=True)
def turnaround_csv(request: HttpRequest) -> HttpResponse:
    """The report's figures as CSV (see worklist.reports.export)."""
    form, report = _compute(request)
    if report is None:
        return HttpResponse(
            form.errors.as_text(), status=400, content_type="text/plain"
        )
    filters = report.filters
    response = HttpResponse(to_csv(report), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="turnaround-{filters.start}-{filters.end}.csv"'
    )
    return response


@permission_required(REPORTS_PERMISSION, raise_exception=True)
def study_timeline(request: HttpRequest, study_id: int) -> HttpResponse:
    """One study's milestones and stage times (no patient identifiers)."""
    study = get_object_or_404(
        Study.objects.select_related("scoring", "worklist_entry__claimed_by"),
        pk=study_id,
    )
    # The milestones live with their owners (triage, inference, worklist).
    stamps = Study.objects.values(*MILESTONE_FIELDS.values()).get(pk=study.pk)
    timeline = Timeline({m: stamps[field] for m, field in MILESTONE_FIELDS.items()})
    context = {
        "study": study,
        "milestones": [(m, timeline.at(m)) for m in MILESTONE_FIELDS],
        "stages": [(s, minutes(stage_seconds(timeline, s))) for s in STAGES],
        "sla_minutes": minutes(sla_seconds(timeline)),
        "target_minutes": sla_targets().minutes_for(study.patient_class),
    }
    return render(request, "worklist/reports_study.html", context)


def drift_charts(report: AiReport) -> list[tuple[Any, charts.Chart]]:
    """Per finding: share of scores per probability bin, baseline against now."""
    labels = [f"{i / DRIFT_BINS:.1f}" for i in range(DRIFT_BINS)]
    drawn = []
    for drift in report.drift:
        series = [("Now", "median", _shares(drift.actual))]
        if drift.baseline is not None:
            series.append(("Validation", "baseline", _shares(drift.baseline)))
        title = f"{drift.model_id} {drift.model_version} {drift.code}: scores (%)"
        drawn.append((drift, charts.line_chart(title, labels, series, unit="%")))
    return drawn


def _shares(counts: tuple[int, ...]) -> list[float | None]:
    total = sum(counts)
    return [100 * c / total if total else None for c in counts]


@permission_required(REPORTS_PERMISSION, raise_exception=True)
def ai_performance(request: HttpRequest) -> HttpResponse:
    """AI performance per model version, drift and breakdowns."""
    form: AiForm = ai_form(request.GET, timezone.localdate())
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        report = ai_report(
            AiFilters(form.cleaned_data["start"], form.cleaned_data["end"]),
            baselines=Path(settings.VAR_DIR) / "validation",
            psi_warning=settings.RADTRIAGE_PSI_WARNING,
        )
        context.update(
            report=report,
            drift_charts=drift_charts(report),
            psi_warning=settings.RADTRIAGE_PSI_WARNING,
        )
    status = 200 if form.is_valid() else 400
    return render(request, "worklist/reports_ai.html", context, status=status)
