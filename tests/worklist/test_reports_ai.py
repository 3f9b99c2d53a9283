"""The AI performance report against a hand-computed fixture.

Model ich-ct 1.0, March 2026. Current results: S1-S4 scored, S5 not applicable,
S6 failed; S7's result was superseded and S8 was scored in April (both left out).
Findings (probability, positive, reader verdict, scanner, patient):
  S1 0.95 + agree     GE Revolution   F, 75 at the study (65+)
  S2 0.80 + disagree  GE Revolution   F, 75
  S3 0.10 - agree     Siemens Force   M, 17 (born 20 March 2008, study 10 March)
  S4 0.55 + (none)    Siemens Force   sex and birth date unknown
Findings 4, positive 3 (75 %); judged S1, S2, S3, agreed S1, S3 -> 2/3; positive
and judged S1, S2, confirmed S1 -> PPV 1/2.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

from inference.models import RegisteredModel, ScoreStatus
from tests.factories import (
    AIFeedbackFactory,
    FindingFactory,
    PatientFactory,
    ScoreResultFactory,
    SeriesFactory,
    StudyFactory,
)
from triage.models import Patient, Series, Study
from triage.report_intake import ReportDetails, receive_report
from triage.roles import Role
from triage.vocabulary import IntakeSource, ReportStatus
from worklist.models import FeedbackVerdict
from worklist.reports.ai import AiFilters, AiReport, ai_report
from worklist.tat import population_stability_index

pytestmark = pytest.mark.django_db

MARCH = AiFilters(dt.date(2026, 3, 1), dt.date(2026, 3, 31))
SCORED_AT = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)


def _study(patient: Patient, scanner: tuple[str, str]) -> tuple[Study, Series]:
    study = StudyFactory.create(patient=patient, study_date=dt.date(2026, 3, 10))
    series = SeriesFactory.create(
        study=study, manufacturer=scanner[0], manufacturer_model_name=scanner[1]
    )
    return study, series


@pytest.fixture
def fixture_studies() -> dict[str, Study]:
    model = RegisteredModel.objects.create(model_id="ich-ct", version="1.0")
    reader = User.objects.create(username="reader")
    older = PatientFactory.create(
        patient_sex="F", patient_birth_date=dt.date(1950, 6, 15)
    )
    young = PatientFactory.create(
        patient_sex="M", patient_birth_date=dt.date(2008, 3, 20)
    )
    unknown = PatientFactory.create()
    ge, siemens = ("GE", "Revolution"), ("Siemens", "Force")
    plan = [
        (
            "S1",
            older,
            ge,
            ScoreStatus.SCORED,
            0.95,
            FeedbackVerdict.AGREE,
            True,
            SCORED_AT,
        ),
        (
            "S2",
            older,
            ge,
            ScoreStatus.SCORED,
            0.80,
            FeedbackVerdict.DISAGREE,
            True,
            SCORED_AT,
        ),
        (
            "S3",
            young,
            siemens,
            ScoreStatus.SCORED,
            0.10,
            FeedbackVerdict.AGREE,
            True,
            SCORED_AT,
        ),
        ("S4", unknown, siemens, ScoreStatus.SCORED, 0.55, None, True, SCORED_AT),
        ("S5", young, ge, ScoreStatus.NOT_APPLICABLE, None, None, True, SCORED_AT),
        ("S6", unknown, ge, ScoreStatus.FAILED, None, None, True, SCORED_AT),
        ("S7", older, ge, ScoreStatus.SCORED, 0.99, None, False, SCORED_AT),
        (
            "S8",
            older,
            ge,
            ScoreStatus.SCORED,
            0.99,
            None,
            True,
            SCORED_AT + dt.timedelta(days=30),
        ),
    ]
    studies = {}
    for name, patient, scanner, status, probability, verdict, current, at in plan:
        study, series = _study(patient, scanner)
        result = ScoreResultFactory.create(
            study=study,
            model=model,
            series=series,
            instance_set=name,
            status=status,
            is_current=current,
            scored_at=at,
        )
        if probability is not None:
            FindingFactory.create(result=result, probability=probability, created_at=at)
        if verdict is not None:
            AIFeedbackFactory.create(
                study=study, user=reader, verdict=verdict, created_at=at, updated_at=at
            )
        studies[name] = study
    return studies


def _report(tmp_path: Path) -> AiReport:
    return ai_report(MARCH, baselines=tmp_path, psi_warning=0.2)


def test_activity_per_model_version(fixture_studies: object, tmp_path: Path) -> None:
    (version,) = _report(tmp_path).versions
    assert (version.model_id, version.model_version) == ("ich-ct", "1.0")
    assert (version.scored, version.not_applicable, version.failed) == (4, 1, 1)


def test_positive_rate_agreement_and_ppv(
    fixture_studies: object, tmp_path: Path
) -> None:
    (row,) = _report(tmp_path).findings
    assert (row.findings, row.positives, row.judged, row.agreed) == (4, 3, 3, 2)
    assert row.positive_rate == 0.75
    assert row.agreement == pytest.approx(2 / 3)
    assert row.ppv == 0.5


def test_breakdowns_by_scanner_age_band_and_sex(
    fixture_studies: object, tmp_path: Path
) -> None:
    report = _report(tmp_path)

    def table(rows: tuple) -> dict[str, tuple]:  # type: ignore[type-arg]
        return {r.group: (r.findings, r.positives, r.agreement, r.ppv) for r in rows}

    assert table(report.by_scanner) == {
        "GE Revolution": (2, 2, 0.5, 0.5),
        "Siemens Force": (2, 1, 1.0, None),
    }
    assert table(report.by_age) == {
        "65+": (2, 2, 0.5, 0.5),
        "0-17": (1, 0, 1.0, None),  # a day short of 18
        "unknown": (1, 1, None, None),
    }
    assert table(report.by_sex) == {
        "F": (2, 2, 0.5, 0.5),
        "M": (1, 0, 1.0, None),
        "": (1, 1, None, None),
    }


def test_drift_against_the_validation_baseline(
    fixture_studies: object, tmp_path: Path
) -> None:
    (drift,) = _report(tmp_path).drift
    assert drift.actual == (0, 1, 0, 0, 0, 1, 0, 0, 1, 1)
    assert drift.baseline is None and drift.psi is None and not drift.warning
    (tmp_path / "ich-ct-1.0-ich.baseline.json").write_text(
        json.dumps({"histogram": [10] * 10})
    )
    (drift,) = _report(tmp_path).drift
    # Four bins at 0.25 against 0.1, six floored at 1e-4 against 0.1.
    expected = 4 * 0.15 * math.log(2.5) + 6 * (1e-4 - 0.1) * math.log(1e-3)
    assert drift.psi == pytest.approx(expected)
    assert drift.psi == population_stability_index([10] * 10, drift.actual)
    assert drift.warning


def test_the_page_shows_the_drift_warning(
    fixture_studies: object,
    login: Callable[[Role], Client],
    settings: object,
    tmp_path: Path,
) -> None:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "ich-ct-1.0-ich.baseline.json").write_text(
        json.dumps({"histogram": [10] * 10})
    )
    client = login(Role.DEPARTMENT_HEAD)
    page = client.get("/reports/ai/?start=2026-03-01&end=2026-03-31").content.decode()
    assert 'data-page="reports-ai"' in page
    assert "Drift: PSI above 0.2" in page
    assert "GE Revolution" in page
    assert page.count("<svg") == 1
    assert client.get("/reports/ai/?start=2026-03-31&end=2026-03-01").status_code == 400


def test_sensitivity_and_ppv_against_the_reports(
    fixture_studies: dict[str, Study], tmp_path: Path
) -> None:
    """S1 report positive (true positive), S2 negative (false positive), S3
    positive where the AI said no (false negative), S4 uncertain (apart)."""
    texts = {
        "S1": "IMPRESSION: Acute ICH in the left basal ganglia.",
        "S2": "IMPRESSION: No ICH. Chronic small vessel disease.",
        "S3": "IMPRESSION: Small ICH along the falx.",
        "S4": "IMPRESSION: Questionable ICH; recommend follow-up.",
    }
    for name, text in texts.items():
        study = fixture_studies[name]
        study.accession_number = f"ACC-{name}"
        study.save(update_fields=["accession_number"])
        receive_report(
            ReportDetails(
                accession_number=f"ACC-{name}",
                status=ReportStatus.FINAL,
                reported_at=SCORED_AT,
                text=text,
            ),
            source=IntakeSource.HL7,
            now=SCORED_AT,
        )
    (row,) = _report(tmp_path).findings
    assert (
        row.report_true_positives,
        row.report_false_positives,
        row.report_false_negatives,
        row.report_uncertain,
    ) == (1, 1, 1, 1)
    assert row.reported == 3
    assert row.report_sensitivity == 0.5
    assert row.report_ppv == 0.5
