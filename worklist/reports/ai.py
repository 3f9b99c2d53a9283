"""The AI performance report: per model version, what it scored and how readers
judged it, score drift against its validation baseline, and breakdowns.

Counts are database aggregates over current results and findings scored in the
range; the drift maths is :func:`worklist.tat.population_stability_index`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import (
    Cast,
    Coalesce,
    Concat,
    ExtractDay,
    ExtractMonth,
    Floor,
    Least,
)
from django.db.models.functions import ExtractYear as Year
from django.utils import timezone

from inference.models import Finding, ReportFindingLabel, ScoreResult, ScoreStatus
from inference.vocabulary import ReportLabel
from worklist.models import AIFeedback, FeedbackVerdict
from worklist.tat import population_stability_index

DRIFT_BINS = 10
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("0-17", 0, 17),
    ("18-39", 18, 39),
    ("40-64", 40, 64),
    ("65+", 65, 200),
)


@dataclass(frozen=True, slots=True)
class AiFilters:
    """Results scored from ``start`` to ``end`` inclusive (site-local dates)."""

    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class VersionActivity:
    """What one model version did with the studies it was offered."""

    model_id: str
    model_version: str
    scored: int
    not_applicable: int
    failed: int


@dataclass(frozen=True, slots=True)
class FindingPerformance:
    """One finding of one model version, or one subgroup of it.

    Agreement counts findings a reader judged (agree or disagree; unsure left
    out). PPV is the share of positive findings judged that a reader confirmed.

    Against the reports (``inference.ReportFindingLabel``): a finding whose
    report is positive is a true one; a report that is negative or does not
    name the finding makes it false; uncertain reports are counted apart and
    left out of the sensitivity and the report PPV.
    """

    model_id: str
    model_version: str
    code: str
    group: str
    findings: int
    positives: int
    agreed: int
    judged: int
    positives_confirmed: int
    positives_judged: int
    report_true_positives: int = 0
    report_false_positives: int = 0
    report_false_negatives: int = 0
    report_uncertain: int = 0
    report_true_negatives: int = 0

    @property
    def reported(self) -> int:
        """Findings whose report says yes or no (uncertain ones left out)."""
        return (
            self.report_true_positives
            + self.report_false_positives
            + self.report_false_negatives
            + self.report_true_negatives
        )

    @property
    def report_sensitivity(self) -> float | None:
        found = self.report_true_positives + self.report_false_negatives
        return self.report_true_positives / found if found else None

    @property
    def report_ppv(self) -> float | None:
        flagged = self.report_true_positives + self.report_false_positives
        return self.report_true_positives / flagged if flagged else None

    @property
    def positive_rate(self) -> float | None:
        return self.positives / self.findings if self.findings else None

    @property
    def agreement(self) -> float | None:
        return self.agreed / self.judged if self.judged else None

    @property
    def ppv(self) -> float | None:
        if not self.positives_judged:
            return None
        return self.positives_confirmed / self.positives_judged


@dataclass(frozen=True, slots=True)
class Drift:
    """Score distribution of a finding now against its validation baseline."""

    model_id: str
    model_version: str
    code: str
    actual: tuple[int, ...]
    baseline: tuple[int, ...] | None
    psi: float | None
    warning: bool

    @property
    def scores(self) -> int:
        return sum(self.actual)


@dataclass(frozen=True, slots=True)
class AiReport:
    filters: AiFilters
    versions: tuple[VersionActivity, ...]
    findings: tuple[FindingPerformance, ...]
    drift: tuple[Drift, ...]
    by_scanner: tuple[FindingPerformance, ...]
    by_age: tuple[FindingPerformance, ...]
    by_sex: tuple[FindingPerformance, ...]


def _bounds(filters: AiFilters) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    return (
        dt.datetime.combine(filters.start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(filters.end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )


def _results(filters: AiFilters) -> QuerySet[ScoreResult]:
    start, end = _bounds(filters)
    return ScoreResult.objects.current().filter(scored_at__gte=start, scored_at__lt=end)


def _verdict(verdict: FeedbackVerdict) -> Exists:
    return Exists(
        AIFeedback.objects.filter(
            study_id=OuterRef("study_id"),
            finding_code=OuterRef("code"),
            verdict=verdict,
        )
    )


def _report_label() -> Subquery:
    return Subquery(
        ReportFindingLabel.objects.filter(
            study_id=OuterRef("study_id"), code=OuterRef("code")
        ).values("label")[:1]
    )


def _age_years() -> Any:
    """Whole years from birth to the study date."""
    birthday_later = Q(study_month__lt=F("birth_month")) | Q(
        study_month=F("birth_month"), study_day__lt=F("birth_day")
    )
    return (
        F("study_year")
        - F("birth_year")
        - Case(When(birthday_later, then=Value(1)), default=Value(0))
    )


def _age_band() -> Case:
    return Case(
        *(
            When(age__gte=low, age__lte=high, then=Value(name))
            for name, low, high in AGE_BANDS
        ),
        default=Value("unknown"),
    )


def _findings(filters: AiFilters) -> QuerySet[Finding]:
    start, end = _bounds(filters)
    return Finding.objects.current().filter(
        result__scored_at__gte=start, result__scored_at__lt=end
    )


def _performance(
    findings: QuerySet[Finding], group: Any | None
) -> tuple[FindingPerformance, ...]:
    judged = Q(agree=True) | Q(disagree=True)
    report_yes = Q(report_label=ReportLabel.POSITIVE)
    report_no = Q(report_label__in=[ReportLabel.NEGATIVE, ReportLabel.NOT_MENTIONED])
    rows: Iterable[Mapping[str, Any]] = (
        findings.annotate(
            agree=_verdict(FeedbackVerdict.AGREE),
            disagree=_verdict(FeedbackVerdict.DISAGREE),
            report_label=_report_label(),
            model_id=F("result__model__model_id"),
            version=F("result__model_version"),
            group=group if group is not None else Value(""),
        )
        .values("model_id", "version", "code", "group")
        .annotate(
            n=Count("pk"),
            positives=Count("pk", filter=Q(positive=True)),
            agreed=Count("pk", filter=Q(agree=True)),
            judged=Count("pk", filter=judged),
            confirmed=Count("pk", filter=Q(positive=True, agree=True)),
            positives_judged=Count("pk", filter=Q(judged, positive=True)),
            report_tp=Count("pk", filter=report_yes & Q(positive=True)),
            report_fp=Count("pk", filter=report_no & Q(positive=True)),
            report_fn=Count("pk", filter=report_yes & Q(positive=False)),
            report_tn=Count("pk", filter=report_no & Q(positive=False)),
            report_uncertain=Count("pk", filter=Q(report_label=ReportLabel.UNCERTAIN)),
        )
        .order_by("model_id", "version", "code", "group")
    )
    return tuple(
        FindingPerformance(
            model_id=row["model_id"],
            model_version=row["version"],
            code=row["code"],
            group=str(row["group"]),
            findings=row["n"],
            positives=row["positives"],
            agreed=row["agreed"],
            judged=row["judged"],
            positives_confirmed=row["confirmed"],
            positives_judged=row["positives_judged"],
            report_true_positives=row["report_tp"],
            report_false_positives=row["report_fp"],
            report_false_negatives=row["report_fn"],
            report_true_negatives=row["report_tn"],
            report_uncertain=row["report_uncertain"],
        )
        for row in rows
    )


def baseline_path(folder: Path, model_id: str, version: str, code: str) -> Path:
    """Where validate_model leaves a finding's validation score histogram."""
    return folder / f"{model_id}-{version}-{code}.baseline.json"


def _baseline(
    folder: Path, model_id: str, version: str, code: str
) -> tuple[int, ...] | None:
    path = baseline_path(folder, model_id, version, code)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        histogram = tuple(int(v) for v in data["histogram"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return histogram if len(histogram) == DRIFT_BINS else None


def _drift(
    findings: QuerySet[Finding], baselines: Path, warning_above: float
) -> tuple[Drift, ...]:
    # Bin b holds probabilities in [b/10, (b+1)/10); 1.0 falls in the last bin.
    bin_of = Least(
        Cast(Floor(F("probability") * DRIFT_BINS), IntegerField()),
        Value(DRIFT_BINS - 1),
    )
    rows = (
        findings.annotate(
            model_id=F("result__model__model_id"),
            version=F("result__model_version"),
            bin=Coalesce(bin_of, Value(0)),
        )
        .values("model_id", "version", "code", "bin")
        .annotate(n=Count("pk"))
        .order_by()
    )
    histograms: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        key = (row["model_id"], row["version"], row["code"])
        counts = histograms.setdefault(key, [0] * DRIFT_BINS)
        counts[max(0, min(DRIFT_BINS - 1, int(row["bin"])))] += row["n"]
    drifts = []
    for (model_id, version, code), counts in sorted(histograms.items()):
        baseline = _baseline(baselines, model_id, version, code)
        psi = population_stability_index(baseline, counts) if baseline else None
        drifts.append(
            Drift(
                model_id,
                version,
                code,
                tuple(counts),
                baseline,
                psi,
                psi is not None and psi > warning_above,
            )
        )
    return tuple(drifts)


def ai_report(filters: AiFilters, *, baselines: Path, psi_warning: float) -> AiReport:
    """Compute the AI performance report.

    Args:
        baselines: the folder of validation baselines (validate_model output).
        psi_warning: PSI above which drift is flagged (0.2 by convention).
    """
    activity: Iterable[Mapping[str, Any]] = (
        _results(filters)
        .values("model__model_id", "model_version")
        .annotate(
            scored=Count("pk", filter=Q(status=ScoreStatus.SCORED)),
            not_applicable=Count("pk", filter=Q(status=ScoreStatus.NOT_APPLICABLE)),
            failed=Count("pk", filter=Q(status=ScoreStatus.FAILED)),
        )
        .order_by("model__model_id", "model_version")
    )
    findings = _findings(filters)
    dated = findings.annotate(
        study_year=Year("study__study_date"),
        study_month=ExtractMonth("study__study_date"),
        study_day=ExtractDay("study__study_date"),
        birth_year=Year("study__patient__patient_birth_date"),
        birth_month=ExtractMonth("study__patient__patient_birth_date"),
        birth_day=ExtractDay("study__patient__patient_birth_date"),
    ).annotate(age=_age_years())
    scanner = Coalesce(F("result__series__manufacturer"), Value(""))
    return AiReport(
        filters=filters,
        versions=tuple(
            VersionActivity(
                row["model__model_id"],
                row["model_version"],
                row["scored"],
                row["not_applicable"],
                row["failed"],
            )
            for row in activity
        ),
        findings=_performance(findings, None),
        drift=_drift(findings, baselines, psi_warning),
        by_scanner=_performance(
            findings.annotate(
                scanner_model=Coalesce(
                    F("result__series__manufacturer_model_name"), Value("")
                ),
                scanner_make=scanner,
            ),
            _scanner_label(),
        ),
        by_age=_performance(dated, _age_band()),
        by_sex=_performance(
            findings, Coalesce(F("study__patient__patient_sex"), Value(""))
        ),
    )


def _scanner_label() -> Case:
    return Case(
        When(Q(scanner_make="") & Q(scanner_model=""), then=Value("unknown")),
        default=Concat(F("scanner_make"), Value(" "), F("scanner_model")),
    )
