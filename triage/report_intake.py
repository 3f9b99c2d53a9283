"""Reports from the RIS: stored as received, matched to their study, announced.

The one path for a report, whatever carried it (HL7 ORU^R01 / MDM^T02, the
API): :func:`receive_report`. The layers above hear of it through
``triage.signals.report_received``, inside the same transaction, so the
reading state the worklist derives from a final report and the AI monitoring's
label are committed with the report or not at all.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from triage import orders
from triage.models import Report, Study, StudyEvent
from triage.services import record_study_event
from triage.signals import report_received
from triage.vocabulary import IntakeSource, ReportStatus

_EVENT_OF = {
    ReportStatus.PRELIMINARY: StudyEvent.Kind.PRELIMINARY,
    ReportStatus.FINAL: StudyEvent.Kind.FINAL,
    ReportStatus.CORRECTED: StudyEvent.Kind.CORRECTED,
}


class ReportNotApplicable(Exception):
    """A well-formed report that cannot be applied; the reason names no PHI."""


@dataclass(frozen=True, slots=True)
class ReportDetails:
    """What a report message says, whatever its transport."""

    accession_number: str
    status: ReportStatus
    reported_at: datetime
    text: str
    author: str = ""
    # When both sides carry one, it must be the study's.
    study_instance_uid: str = ""

    def digest(self) -> str:
        content = "\x1f".join(
            (self.status, self.reported_at.isoformat(), self.text, self.author)
        )
        return hashlib.sha256(content.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    reports: tuple[Report, ...]
    # False: this exact report was received before; nothing changed.
    new: bool


@transaction.atomic
def receive_report(
    details: ReportDetails, *, source: IntakeSource, now: datetime
) -> ReportOutcome:
    """Store a report for each study of its accession and announce it.

    Idempotent: the same report (status, time, text, author) sent again is
    acknowledged and changes nothing.

    Raises:
        ReportNotApplicable: no accession, no study with it (the images have
            not arrived, or the accession is wrong), or a Study Instance UID
            that is not that study's.
    """
    if not details.accession_number.strip():
        raise ReportNotApplicable("the report carries no accession number")
    studies = list(
        Study.objects.select_for_update()
        .filter(accession_number=details.accession_number)
        .order_by("pk")
    )
    if details.study_instance_uid:
        studies = [
            s for s in studies if s.study_instance_uid == details.study_instance_uid
        ]
    if not studies:
        raise ReportNotApplicable("no study has this report's accession number")
    digest = details.digest()
    stored, new = [], False
    for study in studies:
        report, created = Report.objects.get_or_create(
            study=study,
            digest=digest,
            defaults={
                "status": details.status,
                "reported_at": details.reported_at,
                "received_at": now,
                "source": source,
                "text": details.text,
                "author": details.author,
            },
        )
        stored.append(report)
        if not created:
            continue
        new = True
        record_study_event(
            study.pk,
            _EVENT_OF[details.status],
            at=details.reported_at,
            detail={"source": "ris", "via": source.value, "report_id": report.pk},
        )
        if details.status != ReportStatus.PRELIMINARY:
            orders.record_reported(study.pk, now=now)
        report_received.send(sender=Report, study_id=study.pk, report=report)
    return ReportOutcome(tuple(stored), new)
