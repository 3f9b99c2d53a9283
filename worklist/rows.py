"""What one worklist row shows, prepared for its template."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Prefetch, QuerySet

from inference.models import Finding
from inference.vocabulary import AIStatus
from triage.models import Order, Study
from worklist.alerts.models import Alert
from worklist.models import WorklistEntry
from worklist.priority import Band, ComponentCode, band_of
from worklist.site import reading_ends_in_ris
from worklist.vocabulary import OFF_THE_LIST


def with_live_findings(queryset: QuerySet[Study]) -> QuerySet[Study]:
    """``queryset`` with each study's live positive findings as ``live_findings``."""
    findings = (
        Finding.objects.live().filter(positive=True).select_related("result__model")
    )
    alerts = Alert.objects.unresolved().select_related("acknowledged_by")
    return queryset.prefetch_related(
        Prefetch("findings", queryset=findings, to_attr="live_findings"),
        Prefetch("alerts", queryset=alerts, to_attr="open_alerts"),
    )


MODALITY_CHOICES: tuple[str, ...] = ("CT", "MR", "CR", "DX", "US", "NM", "PT", "XA")

BAND_ICONS: dict[Band, str] = {
    Band.CRITICAL: "‼",
    Band.HIGH: "▲",
    Band.MEDIUM: "△",
    Band.ROUTINE: "•",
}

AI_STATUS_ICONS: dict[str, str] = {
    AIStatus.PENDING: "⏳",
    AIStatus.QUEUED: "⏳",
    AIStatus.SCORING: "⚙",
    AIStatus.SCORED: "✓",
    AIStatus.NOT_APPLICABLE: "∅",
    AIStatus.FAILED: "⚠",
}


@dataclass(frozen=True, slots=True)
class Reason:
    points: float
    text: str


@dataclass(frozen=True, slots=True)
class FindingView:
    """The AI finding a row shows: what, how sure, which model, where."""

    pk: int
    code: str
    display: str
    probability: float
    model: str
    has_heatmap: bool
    key_slice: int | None


@dataclass(frozen=True, slots=True)
class StudyRow:
    """A study as the radiologist's list shows it."""

    study: Study
    band: Band
    band_icon: str
    reasons: tuple[Reason, ...]
    ai_finding: str
    ai_finding_code: str
    ai_status_icon: str
    claimed_by: str
    mine: bool
    can_claim: bool
    can_release: bool
    can_finalize: bool
    show_phi: bool
    finding: FindingView | None = None
    error: str = ""
    # The study's critical-finding alert state: "open", "acknowledged" or "".
    alert_status: str = ""
    alert_text: str = ""

    @classmethod
    def of(
        cls,
        study: Study,
        user: User | AnonymousUser,
        *,
        error: str = "",
    ) -> StudyRow:
        entry = study.worklist_entry
        components: list[dict[str, Any]] = list(entry.priority_components or [])
        reasons = _reasons(components)
        ai = _ai_component(components)
        ai_text = str(ai["reason"]) if ai else ""
        band = band_of(entry.priority_score)
        mine = entry.claimed_by_id is not None and entry.claimed_by_id == user.pk
        # Final or cancelled: nothing to do on the row but look.
        final = entry.reading_status in OFF_THE_LIST
        finding = _top_finding(study)
        return cls(
            study=study,
            band=band,
            band_icon=BAND_ICONS[band],
            reasons=reasons,
            ai_finding=ai_text,
            ai_finding_code=(
                finding.code if finding else str(ai.get("finding", "")) if ai else ""
            ),
            ai_status_icon=AI_STATUS_ICONS.get(study.scoring.ai_status, "?"),
            claimed_by=entry.claimed_by.get_username() if entry.claimed_by else "",
            mine=mine,
            can_claim=entry.claimed_by_id is None and not final,
            can_release=mine and not final,
            can_finalize=not final
            and not reading_ends_in_ris()
            and (mine or entry.claimed_by_id is None),
            show_phi=bool(user.has_perm("triage.view_phi")),
            finding=finding,
            error=error,
            **_alert_state(getattr(study, "open_alerts", [])),
        )


def _reasons(components: list[dict[str, Any]]) -> tuple[Reason, ...]:
    return tuple(
        Reason(float(c.get("points", 0)), str(c.get("reason", "")))
        for c in sorted(components, key=lambda c: -float(c.get("points", 0)))
        if float(c.get("points", 0)) > 0
    )


def _ai_component(components: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next(
        (c for c in components if c.get("code") == ComponentCode.AI.value), None
    )


def _top_finding(study: Study) -> FindingView | None:
    """The live positive finding a row leads with (prefetched ``live_findings``)."""
    live: list[Finding] = getattr(study, "live_findings", [])
    top = max(live, key=lambda f: (f.probability, f.code), default=None)
    if top is None:
        return None
    return FindingView(
        pk=top.pk,
        code=top.code,
        display=top.display,
        probability=top.probability,
        model=f"{top.result.model.name or top.result.model.model_id} "
        f"{top.result.model_version}".strip(),
        has_heatmap=bool(top.heatmap_path),
        key_slice=top.key_slice_index,
    )


def shown_state(study: Study, entry: WorklistEntry) -> dict[str, Any]:
    """Everything a row shows any reader, as JSON-able values.

    ``worklist.refresh`` fingerprints it: the version moves only when this
    changes. What differs per reader (mine, the actions offered) follows from
    the claimant, which is here; the waiting time is counted by the browser,
    and the score travels in the delta itself.
    """
    # The waiting component grows by the minute: the browser re-sorts on the
    # score a delta carries and shows it; the refetch is for everything else.
    components = [
        c
        for c in entry.priority_components or []
        if c.get("code") != ComponentCode.WAITING.value
    ]
    finding = _top_finding(study)
    return {
        "reasons": [(round(r.points), r.text) for r in _reasons(components)],
        "ai": _ai_component(components),
        "status": entry.reading_status,
        "claimed_by": entry.claimed_by_id,
        "ai_status": study.scoring.ai_status,
        "ai_status_reason": study.scoring.ai_status_reason,
        "finding": (
            None
            if finding is None
            else (finding.pk, round(finding.probability, 2), finding.has_heatmap)
        ),
        "alert": _alert_state(getattr(study, "open_alerts", [])),
        "patient_class": study.patient_class,
        "order_priority": study.order_priority,
        "modalities": study.modalities,
        "description": study.study_description,
        "patient": (study.patient_id, study.patient.patient_name),
        "order": order_context(study),
    }


def order_of(study: Study) -> Order | None:
    """The study's order, None when none is known (images without one)."""
    try:
        return study.order
    except Order.DoesNotExist:
        return None


def order_context(study: Study) -> tuple[str, ...] | None:
    """What the study's order tells its readers (shown on the row and on
    alert cards): reason, location, ordering provider, call-back number,
    and the reason of a cancellation. None when no order is known."""
    order = order_of(study)
    if order is None:
        return None
    return (
        order.reason_for_study,
        order.assigned_location,
        order.ordering_provider,
        order.callback_number,
        order.status,
        order.cancel_reason,
    )


def _alert_state(alerts: list[Alert]) -> dict[str, str]:
    """The most pressing unresolved alert, as the row's badge shows it."""
    if not alerts:
        return {}
    alert = min(alerts, key=lambda a: (a.status != "open", -a.raised_at.timestamp()))
    if alert.status == "open":
        text = "Alert escalated" if alert.escalated_at else "Alert open"
    else:
        who = alert.acknowledged_by.get_username() if alert.acknowledged_by else ""
        text = f"Alert acknowledged{f' by {who}' if who else ''}"
    return {"alert_status": alert.status, "alert_text": text}
