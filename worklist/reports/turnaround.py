"""The turnaround report: stage times, SLA compliance, trends and outliers.

Every figure is a database aggregate over the filtered studies (a handful of
queries whatever the number of studies); the definitions are those of
:mod:`worklist.tat`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncDate
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

from triage.models import Study
from worklist.reports.aggregates import (
    PercentileCont,
    prepare_connection,
    stage_duration,
)
from worklist.tat import (
    REPORT_TAT,
    SECONDS_PER_MINUTE,
    STAGES,
    TIME_TO_OPEN,
    Milestone,
    SlaCompliance,
    SlaTargets,
    Stage,
    StageSummary,
)

MILESTONE_FIELDS: dict[Milestone, str] = {
    Milestone.ACQUIRED: "acquired_at",
    Milestone.RECEIVED: "first_instance_received_at",
    Milestone.STABLE: "stable_at",
    Milestone.SCORED: "scoring__scored_at",
    Milestone.OPENED: "worklist_entry__first_opened_at",
    Milestone.FINAL: "worklist_entry__finalized_at",
}
# Studies belong to the day (in the site's time zone) their first image arrived.
PERIOD_FIELD = MILESTONE_FIELDS[Milestone.RECEIVED]
OUTLIER_COUNT = 10
# A LIMIT no report reaches: it only stops the planner inlining a subquery.
FENCE_LIMIT = 2**62
# PostgreSQL settings for the report's own transactions: memory per sort
# (default 4MB would spill a year of studies to disk), and joins in study id
# order. The study, its scoring row and its worklist entry are one-to-one on the
# study id, and each table's primary key index walks it in that order, so a
# merge join reads them side by side; the planner's default, hashing two tables
# of a year's rows each, costs a fifth more on a year of studies.
REPORT_SETTINGS = {"work_mem": "64MB", "enable_hashjoin": "off"}
# How the settings statements begin (tests count the report's queries without them).
SETTINGS_STATEMENT = "SELECT /* report settings */"


@dataclass(frozen=True, slots=True)
class TurnaroundFilters:
    """Which studies a report covers: received from ``start`` to ``end``
    inclusive (site-local dates), narrowed by the optional filters."""

    start: dt.date
    end: dt.date
    modality: str = ""
    patient_class: str = ""
    order_priority: str = ""
    radiologist_id: int | None = None
    # True: only studies the AI raised in the worklist; False: only the others.
    ai_flagged: bool | None = None


@dataclass(frozen=True, slots=True)
class StageRow:
    stage: Stage
    summary: StageSummary


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One day or week: studies received, and the report TAT of those final."""

    period: dt.date
    studies: int
    finalized: int
    within_target: int
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def share(self) -> float | None:
        return self.within_target / self.finalized if self.finalized else None


@dataclass(frozen=True, slots=True)
class Outlier:
    """A finalized study among the slowest, by report TAT (no PHI)."""

    study_id: int
    modalities: str
    patient_class: str
    order_priority: str
    radiologist: str
    sla_seconds: float
    target_minutes: float

    @property
    def over_target_seconds(self) -> float:
        return self.sla_seconds - self.target_minutes * SECONDS_PER_MINUTE


@dataclass(frozen=True, slots=True)
class FlagComparison:
    """Studies the AI flagged (raised in the worklist) against the others."""

    flagged: bool
    studies: int
    to_open: StageSummary
    report_tat: StageSummary


@dataclass(frozen=True, slots=True)
class TurnaroundReport:
    filters: TurnaroundFilters
    studies: int
    stages: tuple[StageRow, ...]
    report_tat: StageSummary
    sla: tuple[SlaCompliance, ...]
    daily: tuple[TrendPoint, ...]
    weekly: tuple[TrendPoint, ...]
    outliers: tuple[Outlier, ...]
    by_flag: tuple[FlagComparison, ...]

    @property
    def sla_overall(self) -> SlaCompliance:
        return SlaCompliance(
            patient_class="all",
            target_minutes=float("nan"),
            finalized=sum(row.finalized for row in self.sla),
            within_target=sum(row.within_target for row in self.sla),
        )


def _field(milestone: Milestone) -> str:
    return MILESTONE_FIELDS[milestone]


def _local_bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    tz = timezone.get_current_timezone()
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz),
    )


def _modality_q(modality: str) -> Q:
    # ModalitiesInStudy is stored backslash-separated ("CT\\SR").
    return (
        Q(modalities=modality)
        | Q(modalities__startswith=modality + "\\")
        | Q(modalities__endswith="\\" + modality)
        | Q(modalities__contains="\\" + modality + "\\")
    )


def _flagged_q() -> Q:
    # Studies without a worklist entry were never raised by the AI.
    return Q(worklist_entry__ai_flagged=True)


def filtered_studies(filters: TurnaroundFilters) -> QuerySet[Study]:
    """The studies a report covers (see :class:`TurnaroundFilters`)."""
    start, end = _local_bounds(filters.start, filters.end)
    studies = Study.objects.filter(
        **{f"{PERIOD_FIELD}__gte": start, f"{PERIOD_FIELD}__lt": end}
    )
    if filters.modality:
        studies = studies.filter(_modality_q(filters.modality))
    if filters.patient_class:
        studies = studies.filter(patient_class=filters.patient_class)
    if filters.order_priority:
        studies = studies.filter(order_priority=filters.order_priority)
    if filters.radiologist_id is not None:
        studies = studies.filter(worklist_entry__claimed_by_id=filters.radiologist_id)
    if filters.ai_flagged is not None:
        studies = studies.filter(_flagged_q() if filters.ai_flagged else ~_flagged_q())
    return studies


def _sla_target_seconds(targets: SlaTargets) -> Case:
    return Case(
        *(
            When(patient_class=name, then=Value(minutes * SECONDS_PER_MINUTE))
            for name, minutes in targets.minutes_by_class.items()
        ),
        default=Value(targets.default_minutes * SECONDS_PER_MINUTE),
        output_field=FloatField(),
    )


@dataclass(frozen=True, slots=True)
class Durations:
    """The report's per-study expressions, in seconds."""

    stages: Mapping[str, Case]
    sla_target: Case

    @classmethod
    def build(cls, targets: SlaTargets) -> Durations:
        return cls(
            stages={
                stage.code: stage_duration(
                    [_field(m) for m in stage.starts], _field(stage.end)
                )
                for stage in STAGES
            },
            sla_target=_sla_target_seconds(targets),
        )

    @property
    def sla_seconds(self) -> Case:
        """The SLA clock: the report turnaround stage."""
        return self.stages[REPORT_TAT.code]

    def within_target(self, **where: Any) -> Count:
        """Count of final reports that met their class's target."""
        met = Q(LessThanOrEqual(self.sla_seconds, self.sla_target), **where)
        return Count("pk", filter=met)


def _summary(row: Mapping[str, Any], prefix: str) -> StageSummary:
    return StageSummary(
        count=row[f"{prefix}_n"],
        median_seconds=row[f"{prefix}_p50"],
        p90_seconds=row[f"{prefix}_p90"],
    )


def _summary_aggregates(
    expression: Case | F, prefix: str, only: Q | None = None
) -> dict[str, Any]:
    return {
        f"{prefix}_n": Count(expression, filter=only),
        f"{prefix}_p50": PercentileCont(expression, 0.5, filter=only),
        f"{prefix}_p90": PercentileCont(expression, 0.9, filter=only),
    }


def _totals(
    studies: QuerySet[Study], durations: Durations, classes: Sequence[str]
) -> dict[str, Any]:
    """One pass over the studies: stage figures, final and within-target counts
    per class, and AI-flagged against not flagged."""
    total = f"{REPORT_TAT.code}_s"
    per_group: dict[str, Any] = {}
    for index, name in enumerate(classes):
        per_group[f"class{index}_final"] = Count(total, filter=Q(klass=name))
        per_group[f"class{index}_within"] = Count(
            "pk", filter=Q(klass=name, **{f"{total}__lte": F("sla_target_s")})
        )
    for flagged in (True, False):
        only = Q(flag=flagged)
        per_group[f"flag{flagged:d}_studies"] = Count("pk", filter=only)
        for prefix, column in (("open", "to_open_s"), ("sla", total)):
            per_group.update(
                _summary_aggregates(F(column), f"flag{flagged:d}_{prefix}", only)
            )
    # Each stage's seconds are computed once per study in a subquery that the
    # slice keeps PostgreSQL from flattening; inlined, every aggregate would
    # evaluate its CASE again (40 % slower over a year of studies).
    fenced = studies.annotate(
        **{f"{code}_s": expression for code, expression in durations.stages.items()},
        to_open_s=stage_duration(
            [_field(m) for m in TIME_TO_OPEN.starts], _field(TIME_TO_OPEN.end)
        ),
        sla_target_s=durations.sla_target,
        klass=F("patient_class"),
        # Studies without a worklist entry were never raised by the AI.
        flag=Coalesce(F("worklist_entry__ai_flagged"), Value(value=False)),
    )[:FENCE_LIMIT]
    return fenced.aggregate(
        studies=Count("pk"),
        **per_group,
        **{
            key: value
            for code in durations.stages
            for key, value in _summary_aggregates(F(f"{code}_s"), code).items()
        },
    )


def _by_flag(totals: Mapping[str, Any]) -> tuple[FlagComparison, ...]:
    return tuple(
        FlagComparison(
            flagged=flagged,
            studies=totals[f"flag{flagged:d}_studies"],
            to_open=_summary(totals, f"flag{flagged:d}_open"),
            report_tat=_summary(totals, f"flag{flagged:d}_sla"),
        )
        for flagged in (True, False)
        if totals[f"flag{flagged:d}_studies"]
    )


def _trend(
    studies: QuerySet[Study], period: Any, durations: Durations
) -> tuple[TrendPoint, ...]:
    rows: Iterable[Mapping[str, Any]] = (
        studies.annotate(period=period)
        .values("period")
        .annotate(
            studies=Count("pk"),
            within=durations.within_target(),
            **_summary_aggregates(durations.sla_seconds, "sla"),
        )
        .order_by("period")
    )
    return tuple(
        TrendPoint(
            period=(
                row["period"].date()
                if isinstance(row["period"], dt.datetime)
                else row["period"]
            ),
            studies=row["studies"],
            finalized=row["sla_n"],
            within_target=row["within"],
            median_seconds=row["sla_p50"],
            p90_seconds=row["sla_p90"],
        )
        for row in rows
    )


def weekly_from_daily(daily: Sequence[TrendPoint]) -> tuple[TrendPoint, ...]:
    """Sum the days into weeks starting on Monday (counts and shares only:
    percentiles do not add up, so a week has no median or 90th percentile)."""
    weeks: dict[dt.date, list[int]] = {}
    for day in daily:
        monday = day.period - dt.timedelta(days=day.period.weekday())
        sums = weeks.setdefault(monday, [0, 0, 0])
        sums[0] += day.studies
        sums[1] += day.finalized
        sums[2] += day.within_target
    return tuple(
        TrendPoint(monday, studies, finalized, within, None, None)
        for monday, (studies, finalized, within) in sorted(weeks.items())
    )


def _outliers(studies: QuerySet[Study], durations: Durations) -> tuple[Outlier, ...]:
    rows = (
        studies.annotate(sla=durations.sla_seconds, target=durations.sla_target)
        .filter(sla__isnull=False)
        .order_by(F("sla").desc(), "pk")
        .values(
            "pk",
            "modalities",
            "patient_class",
            "order_priority",
            "worklist_entry__claimed_by__username",
            "sla",
            "target",
        )[:OUTLIER_COUNT]
    )
    return tuple(
        Outlier(
            study_id=row["pk"],
            modalities=row["modalities"],
            patient_class=row["patient_class"],
            order_priority=row["order_priority"],
            radiologist=row["worklist_entry__claimed_by__username"] or "",
            sla_seconds=row["sla"],
            target_minutes=row["target"] / SECONDS_PER_MINUTE,
        )
        for row in rows
    )


@contextmanager
def _report_settings() -> Iterator[None]:
    """Apply :data:`REPORT_SETTINGS` on PostgreSQL for the queries inside, and
    put back what was set before (a caller's transaction keeps its own)."""
    if connection.vendor != "postgresql":
        yield
        return
    names, values = list(REPORT_SETTINGS), list(REPORT_SETTINGS.values())
    # No savepoint of its own: an error inside ends the enclosing transaction
    # or savepoint, whose rollback takes the settings with it.
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        # One statement each way: read what was set, then set the report's.
        cursor.execute(
            f"{SETTINGS_STATEMENT} "
            + ", ".join(
                ["current_setting(%s)"] * len(names)
                + ["set_config(%s, %s, true)"] * len(names)
            ),
            [
                *names,
                *(part for pair in zip(names, values, strict=True) for part in pair),
            ],
        )
        before = cursor.fetchone()[: len(names)]
        yield
        cursor.execute(
            f"{SETTINGS_STATEMENT} "
            + ", ".join(["set_config(%s, %s, true)"] * len(names)),
            [part for pair in zip(names, before, strict=True) for part in pair],
        )


def _in_parallel(*parts: Callable[[], Any]) -> list[Any]:
    """Run independent read queries, concurrently where that is safe.

    On PostgreSQL outside a transaction each part runs in a thread on its own
    connection, so the database sorts for several percentiles at once. Inside a
    transaction (tests, or a caller's atomic block) other connections could not
    see its rows, so the parts run one after another on this connection.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with _report_settings():
            return [part() for part in parts]

    def run(part: Callable[[], Any]) -> Any:
        try:
            with _report_settings():
                return part()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        return list(pool.map(run, parts))


def turnaround_report(
    filters: TurnaroundFilters, targets: SlaTargets
) -> TurnaroundReport:
    """Compute the turnaround report in three database queries."""
    prepare_connection(connection)
    tz = timezone.get_current_timezone()
    studies = filtered_studies(filters)
    durations = Durations.build(targets)
    classes = list(targets.minutes_by_class)
    if filters.patient_class and filters.patient_class not in classes:
        classes.append(filters.patient_class)
    totals, daily, outliers = _in_parallel(
        lambda: _totals(studies, durations, classes),
        lambda: _trend(studies, TruncDate(PERIOD_FIELD, tzinfo=tz), durations),
        lambda: _outliers(studies, durations),
    )
    stages = tuple(StageRow(stage, _summary(totals, stage.code)) for stage in STAGES)
    return TurnaroundReport(
        filters=filters,
        studies=totals["studies"],
        stages=stages,
        report_tat=_summary(totals, REPORT_TAT.code),
        sla=tuple(
            SlaCompliance(
                patient_class=name,
                target_minutes=targets.minutes_for(name),
                finalized=totals[f"class{index}_final"],
                within_target=totals[f"class{index}_within"],
            )
            for index, name in enumerate(classes)
        ),
        daily=daily,
        weekly=weekly_from_daily(daily),
        outliers=outliers,
        by_flag=_by_flag(totals),
    )
