"""Keeping worklist entries up to date: priority, reading status, delta version.

One function decides what an entry shows (:func:`refresh`): the priority from
the engine, the reading status of a study nobody holds, and a digest of
everything its row shows. The version moves, and a delta is queued, only when
that digest changes, so a change no reader would see sends nothing.

Changes made in lower layers (a study became stable, its order arrived, it was
scored) reach the worklist as signals; those queue the study here, and each
transaction's queued studies are refreshed once, after it commits
(:func:`queue_refresh`). A refresh lost to a crash after that commit is made by
the next periodic refresh (:func:`refresh_all`), which re-scores every entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import date, datetime

from django.conf import settings
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from inference.models import Finding
from inference.vocabulary import AIStatus
from radtriage.db import OnCommitBatch, recoverable_transaction
from triage.models import Study
from triage.vocabulary import OrderPriority, OrderStatus, PatientClass, Severity
from worklist import broadcast
from worklist.alerts.models import Alert
from worklist.models import WorklistEntry
from worklist.priority import (
    FindingInput,
    PriorityInputs,
    PriorityScore,
    PriorityWeights,
    compute_priority,
    waiting_start,
)
from worklist.rows import order_of, shown_state
from worklist.vocabulary import OFF_THE_LIST, ReadingStatus

logger = logging.getLogger(__name__)

#: How much of the AI points each finding severity can earn (x probability).
SEVERITY_WEIGHTS: dict[str, float] = {
    Severity.CRITICAL: 1.0,
    Severity.URGENT: 0.6,
    Severity.NON_URGENT: 0.3,
}
#: Entries refreshed per transaction by the periodic refresh.
REFRESH_CHUNK = 500

#: Reading states the system moves a study between until someone claims it.
WAITING = frozenset(
    {ReadingStatus.AWAITING_IMAGES, ReadingStatus.AWAITING_AI, ReadingStatus.READY}
)
#: The fields a refresh may change.
REFRESHED_FIELDS = (
    "priority_score",
    "priority_components",
    "reading_status",
    "ai_flagged",
    "shown_digest",
    "version",
)


def priority_weights() -> PriorityWeights:
    """The configured weights (settings RADTRIAGE_PRIORITY_* and SLA targets)."""
    defaults = PriorityWeights()
    sla: dict[str, float] = getattr(settings, "RADTRIAGE_SLA_MINUTES", {})
    return PriorityWeights(
        order_points={
            OrderPriority(k): v
            for k, v in settings.RADTRIAGE_PRIORITY_ORDER_POINTS.items()
        },
        class_points={
            PatientClass(k): v
            for k, v in settings.RADTRIAGE_PRIORITY_CLASS_POINTS.items()
        },
        ai_points=settings.RADTRIAGE_PRIORITY_AI_POINTS,
        waiting_points=settings.RADTRIAGE_PRIORITY_WAITING_POINTS,
        sla_minutes={
            pc: float(sla.get(pc.value, defaults.sla_for(pc))) for pc in PatientClass
        },
        max_wait_factor=settings.RADTRIAGE_PRIORITY_MAX_WAIT_FACTOR,
        age_points=settings.RADTRIAGE_PRIORITY_AGE_POINTS,
    )


def _age_years(birth: date | None, on: date) -> int | None:
    if birth is None:
        return None
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return max(years, 0)


def _finding_inputs(study: Study) -> tuple[FindingInput, ...]:
    """The study's live findings (prefetched as ``all_live_findings``)."""
    findings: list[Finding] = getattr(study, "all_live_findings", [])
    return tuple(
        FindingInput(
            code=finding.code,
            display=finding.display,
            severity=SEVERITY_WEIGHTS.get(finding.severity, 1.0),
            probability=finding.probability,
            positive=finding.positive,
            shadow=finding.shadow,
        )
        for finding in findings
    )


def score_of(
    study: Study,
    findings: tuple[FindingInput, ...],
    weights: PriorityWeights,
    now: datetime,
) -> PriorityScore:
    """The engine's priority of ``study`` with its live ``findings``."""
    inputs = PriorityInputs(
        order_priority=OrderPriority(study.order_priority),
        patient_class=PatientClass(study.patient_class),
        waiting_since=waiting_start(
            study.acquired_at, study.first_instance_received_at
        ),
        findings=findings,
        patient_age_years=_age_years(
            study.patient.patient_birth_date, study.study_date or now.date()
        ),
    )
    return compute_priority(inputs, weights, now=now)


def order_cancelled(study: Study) -> bool:
    """Whether the study's order was cancelled (``order`` loaded with it)."""
    order = order_of(study)
    return order is not None and order.status == OrderStatus.CANCELLED


def unclaimed_status(entry: WorklistEntry, study: Study) -> ReadingStatus:
    """Where a study stands when nobody holds it: the one rule."""
    if order_cancelled(study):
        return ReadingStatus.CANCELLED
    if entry.preliminary_at is not None:
        return ReadingStatus.PRELIMINARY
    if study.stable_at is None:
        return ReadingStatus.AWAITING_IMAGES
    if study.scoring.ai_status in (AIStatus.PENDING, AIStatus.QUEUED, AIStatus.SCORING):
        return ReadingStatus.AWAITING_AI
    return ReadingStatus.READY


#: What a refresh reads of a study beside its row: patient, scoring state and
#: order (a cancelled order takes the study off the list).
REFRESH_RELATED = ("patient", "scoring", "order")


def studies_to_refresh(study_ids: Iterable[int]) -> list[Study]:
    """The studies with what a refresh reads: patient, scoring, findings, alerts."""
    studies = list(
        Study.objects.filter(pk__in=list(study_ids)).select_related(*REFRESH_RELATED)
    )
    load_findings_and_alerts(studies)
    return studies


def load_findings_and_alerts(studies: list[Study]) -> None:
    """Attach the studies' live findings and open alerts, as a refresh reads them.

    One read of the live findings serves both the engine (all of them) and
    the row (the positive ones, as ``with_live_findings`` gives them).
    """
    live = Finding.objects.live().select_related("result__model")
    alerts = Alert.objects.unresolved().select_related("acknowledged_by")
    prefetch_related_objects(
        studies,
        Prefetch("findings", live, to_attr="all_live_findings"),
        Prefetch("alerts", alerts, to_attr="open_alerts"),
    )
    for study in studies:
        found: list[Finding] = getattr(study, "all_live_findings", [])
        study.live_findings = [f for f in found if f.positive]  # type: ignore[attr-defined]


def refresh(
    entry: WorklistEntry, study: Study, weights: PriorityWeights, now: datetime
) -> list[str]:
    """Bring ``entry`` up to date in memory; the fields that changed.

    The caller saves them. ``study`` comes from :func:`studies_to_refresh`;
    ``entry`` may carry the caller's own changes (a claim), which the digest
    then covers.
    """
    before = {name: getattr(entry, name) for name in REFRESHED_FIELDS}
    findings = _finding_inputs(study)
    if entry.reading_status != ReadingStatus.FINAL:
        score = score_of(study, findings, weights, now)
        entry.priority_score = score.total
        entry.priority_components = [c.as_dict() for c in score.components]
    if (
        (entry.claimed_by_id is None and entry.reading_status in WAITING)
        # A cancelled order ends reading, claimed or not; a renewed one
        # brings the study back where it stands.
        or entry.reading_status == ReadingStatus.CANCELLED
        or order_cancelled(study)
    ):
        entry.reading_status = unclaimed_status(entry, study)
    # Flagged: the AI found something, even where the wait cap outranks it.
    entry.ai_flagged = any(f.positive and not f.shadow for f in findings)
    digest = _digest(shown_state(study, entry))
    if digest != entry.shown_digest:
        entry.shown_digest = digest
        entry.version += 1
    return [name for name in REFRESHED_FIELDS if getattr(entry, name) != before[name]]


def _digest(state: object) -> str:
    text = json.dumps(state, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def announce(entry: WorklistEntry, changed: Iterable[str], shown_score: float) -> None:
    """Queue the delta for a refreshed entry, if a reader would see a change.

    A new version (the row's content changed) or a new whole score (the list's
    order and the badge; ``shown_score`` is the score before) sends a delta.
    """
    if entry.reading_status in OFF_THE_LIST:
        if "version" in changed:
            broadcast.queue_study_removed(entry.study_id)
        return
    if "version" in changed or round(shown_score) != round(entry.priority_score):
        broadcast.queue_study_changed(
            entry.study_id, entry.version, entry.priority_score
        )


def refresh_entries(study_ids: Iterable[int], *, now: datetime) -> int:
    """Refresh the entries of ``study_ids`` in one transaction.

    Entries are locked (others' locked ones skipped: whoever holds them is
    changing them and refreshes them as it does). A study without an entry
    gets one. Writes only what changed, and queues one delta per entry whose
    row a reader would see change. The commit does not wait for the disk: an
    entry is derived state, and the periodic refresh makes again what a power
    failure loses.

    Returns:
        How many entries changed.
    """
    ids = sorted(set(study_ids))
    with recoverable_transaction():
        return _refresh_locked(ids, now)


def _refresh_locked(ids: list[int], now: datetime) -> int:
    # A final entry is off the list: nothing it shows is watched any more.
    locked = (
        WorklistEntry.objects.select_for_update(skip_locked=True)
        .filter(study_id__in=ids)
        .exclude(reading_status=ReadingStatus.FINAL)
    )
    entries = {e.study_id: e for e in locked}
    if len(entries) < len(ids) and ensure_entries(set(ids) - set(entries)):
        entries = {e.study_id: e for e in locked.all()}
    weights = priority_weights()
    dirty: list[WorklistEntry] = []
    fields: set[str] = set()
    for study in studies_to_refresh(entries):
        entry = entries[study.pk]
        study.worklist_entry = entry
        shown_score = entry.priority_score
        changed = refresh(entry, study, weights, now)
        if changed:
            dirty.append(entry)
            fields.update(changed)
            announce(entry, changed, shown_score)
    if dirty:
        WorklistEntry.objects.bulk_update(dirty, sorted(fields))
    return len(dirty)


def recompute_priority(study_id: int, *, now: datetime) -> bool:
    """Refresh one study's entry now; whether it changed."""
    return refresh_entries([study_id], now=now) > 0


def refresh_all(*, now: datetime) -> int:
    """Refresh every entry not final, for the time each study has waited.

    Runs periodically; chunked so no transaction holds many locks; each chunk's
    deltas go out as one message.

    Returns:
        How many entries changed.
    """
    ids = list(
        WorklistEntry.objects.exclude(reading_status=ReadingStatus.FINAL)
        .order_by("study_id")
        .values_list("study_id", flat=True)
    )
    changed = 0
    for start in range(0, len(ids), REFRESH_CHUNK):
        changed += refresh_entries(ids[start : start + REFRESH_CHUNK], now=now)
    return changed


def lock_entry(study_id: int, *related: str) -> WorklistEntry | None:
    """The study's entry, row-locked, with ``related`` loaded; None if no study.

    The entry's lock serialises the worklist's changes of one study (claims,
    reading states, alerts). A study without an entry gets one first.
    """
    locked = (
        WorklistEntry.objects.select_for_update(of=("self",))
        .select_related(*related)
        .filter(study_id=study_id)
    )
    entry = locked.first()
    if entry is None and ensure_entries([study_id]):
        entry = locked.first()
    return entry


def ensure_entries(study_ids: Iterable[int]) -> int:
    """Create the entries of these studies that have none; how many were made.

    Entries are made with their study (a receiver of its creation); this
    mends, where a study is used, what bypassed that (a bulk load).
    """
    missing = Study.objects.filter(worklist_entry__isnull=True, pk__in=list(study_ids))
    made = WorklistEntry.objects.bulk_create(
        [WorklistEntry(study_id=pk) for pk in missing.values_list("pk", flat=True)],
        ignore_conflicts=True,
    )
    return len(made)


# --- refreshing once per transaction -------------------------------------------


def _refresh_committed(study_ids: set[int]) -> None:
    try:
        refresh_entries(study_ids, now=timezone.now())
    except Exception:
        # The change itself is committed; the periodic refresh catches up.
        logger.exception("refreshing worklist entries failed")


_pending: OnCommitBatch[set[int]] = OnCommitBatch(set, _refresh_committed)


def queue_refresh(study_id: int) -> None:
    """Refresh the study's entry once the current transaction commits.

    However many changes a transaction makes to one study (scored, alert
    raised), its entry is refreshed, and a delta queued, once.
    """
    pending = _pending.current()
    if pending is None:
        recompute_priority(study_id, now=timezone.now())
        return
    pending.add(study_id)
