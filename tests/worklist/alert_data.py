"""Helpers for alert tests: scored studies with findings, built in the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from inference.models import Finding, ScoreResult
from inference.vocabulary import AIStatus
from tests.factories import FindingFactory, ScoreResultFactory, StudyFactory
from triage.models import Study
from worklist.vocabulary import ReadingStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def scored_study(**fields: Any) -> Study:
    """A study received, stable and scored just before ``NOW``."""
    defaults: dict[str, Any] = {
        "reading_status": ReadingStatus.READY,
        "ai_status": AIStatus.SCORED,
        "first_instance_received_at": NOW - timedelta(seconds=40),
        "last_instance_received_at": NOW - timedelta(seconds=30),
        "stable_at": NOW - timedelta(seconds=20),
        "scored_at": NOW - timedelta(seconds=5),
    }
    return StudyFactory.create(**{**defaults, **fields})


def add_finding(
    study: Study,
    *,
    code: str = "ich",
    probability: float = 0.94,
    threshold: float = 0.5,
    severity: str = "critical",
    shadow: bool = False,
    supersede: bool = True,
) -> Finding:
    """A new current result with one finding; earlier results are superseded."""
    if supersede and not shadow:
        ScoreResult.objects.filter(study=study, mode="active").update(is_current=False)
    result = ScoreResultFactory.create(
        study=study, mode="shadow" if shadow else "active", scored_at=NOW
    )
    return FindingFactory.create(
        result=result,
        code=code,
        severity=severity,
        probability=probability,
        threshold=threshold,
        created_at=NOW,
    )
