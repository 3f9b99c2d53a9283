"""The AI monitoring's ground truth: what each report says of each finding."""

from __future__ import annotations

from datetime import datetime

from inference import report_labels
from inference.models import Finding, ReportFindingLabel
from inference.services.model_registry import registry
from triage.models import Report
from triage.vocabulary import ReportStatus

#: A report of these statuses replaces the label of an earlier one; a
#: preliminary never replaces a final's.
_FINAL = (ReportStatus.FINAL, ReportStatus.CORRECTED)


def _terms_by_code() -> dict[str, tuple[str, ...]]:
    terms: dict[str, tuple[str, ...]] = {}
    for entry in registry():
        if entry.loaded is None:
            continue
        for finding in entry.loaded.manifest.findings:
            terms.setdefault(finding.code, finding.terms)
    return terms


def label_findings_from_report(report: Report, *, now: datetime) -> int:
    """Label each finding the AI scored on the report's study; how many.

    In the report's transaction. Findings of models no longer installed are
    labelled by their display name. Returns the number of labels written.
    """
    scored = dict(
        Finding.objects.filter(study_id=report.study_id)
        .order_by("code", "-created_at")
        .values_list("code", "display")
    )
    if not scored:
        return 0
    terms = _terms_by_code()
    existing = {
        label.code: label
        for label in ReportFindingLabel.objects.select_for_update()
        .filter(study_id=report.study_id)
        .select_related("report")
    }
    written = 0
    for code, display in scored.items():
        before = existing.get(code)
        if (
            before is not None
            and before.report.status in _FINAL
            and report.status not in _FINAL
        ):
            continue
        labelled = report_labels.label_report(report.text, terms.get(code, (display,)))
        ReportFindingLabel.objects.update_or_create(
            study_id=report.study_id,
            code=code,
            defaults={
                "label": labelled.label,
                "explanation": labelled.explanation[:256],
                "report": report,
                "labelled_at": now,
            },
        )
        written += 1
    return written
