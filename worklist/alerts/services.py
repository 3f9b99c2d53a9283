"""Every state change of a critical-finding alert: raise, update, deliver,
acknowledge, escalate, resolve; and the board's alert-fatigue figures."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from inference.models import Finding
from triage.models import Study
from triage.roles import ACKNOWLEDGE_ALERTS as _ACKNOWLEDGE
from triage.roles import Role
from triage.services import record_audit
from triage.vocabulary import Severity
from worklist import refresh
from worklist.alerts.broadcast import queue_alert_changed
from worklist.alerts.models import Alert, AlertStatus, WebhookDelivery
from worklist.alerts.rules import SIGNATURE_HEADER, sign
from worklist.models import AIFeedback, FeedbackVerdict, WorklistEntry
from worklist.vocabulary import ReadingStatus

logger = logging.getLogger(__name__)

ACKNOWLEDGE_ALERTS = f"triage.{_ACKNOWLEDGE}"

#: Only findings of these severities alert the board.
ALERTING_SEVERITIES = frozenset({Severity.CRITICAL.value})


class AlertError(Exception):
    """An alert cannot make the change asked for."""


class AlertResolved(AlertError):
    pass


class WebhookFailed(Exception):
    """The outbound webhook did not answer 2xx; the task retries it."""


class Resolution:
    """Why an alert was resolved."""

    STUDY_FINAL = "study final"
    FINDING_REJECTED = "finding rejected by radiologist"
    NO_LONGER_POSITIVE = "rescored below threshold"


def _announce(alert: Alert, *, bump_study: bool = True) -> None:
    queue_alert_changed(
        alert.pk,
        alert.study_id,
        alert.version,
        alert.status,
        alert.escalated_at is not None,
    )
    if bump_study:
        # The radiologist's row shows the alert state: its entry is refreshed.
        refresh.queue_refresh(alert.study_id)


def _audit(user: Any, action: str, alert: Alert, now: datetime, **detail: Any) -> None:
    record_audit(
        user=user,
        action=action,
        object_type="alert",
        object_id=str(alert.pk),
        now=now,
        detail={"study_id": alert.study_id, **detail},
    )


def _alerting_findings(study_id: int) -> tuple[dict[str, Finding], set[str]]:
    """The study's live findings by code: those that alert, and codes now negative."""
    positive: dict[str, Finding] = {}
    negative: set[str] = set()
    findings = Finding.objects.live().filter(study_id=study_id)
    for finding in findings.order_by("created_at", "pk"):
        alerting = (
            finding.severity in ALERTING_SEVERITIES
            and finding.positive
            and finding.probability >= finding.threshold
        )
        if alerting:
            positive[finding.code] = finding
            negative.discard(finding.code)
        elif finding.code not in positive:
            negative.add(finding.code)
    return positive, negative


@transaction.atomic
def raise_alerts(study_id: int, *, now: datetime) -> list[Alert]:
    """Raise or update the study's alerts from its live findings.

    A live (current, not shadow) critical finding, positive at the site's
    threshold, on a study not yet final raises one alert per finding code; a
    rescoring updates that alert (probability, finding, ``scored_at``) instead of
    raising another. An alert whose finding rescored negative is resolved, and
    reopens should it turn positive again. Alerts a radiologist rejected, or
    acknowledged, stay as they are.

    Args:
        study_id: the study scored.
        now: the time of the scoring's announcement (UTC).

    Returns:
        The alerts raised or changed.
    """
    entry = refresh.lock_entry(study_id, "study", "study__scoring")
    if entry is None or entry.reading_status == ReadingStatus.FINAL:
        return []
    study: Study = entry.study
    positive, negative = _alerting_findings(study_id)
    existing = {
        a.finding_code: a
        for a in Alert.objects.select_for_update().filter(study_id=study_id)
    }
    changed: list[Alert] = []
    for code, finding in positive.items():
        alert = existing.get(code)
        if alert is None:
            alert = Alert.objects.create(
                study=study,
                finding_code=code,
                finding_display=finding.display,
                finding=finding,
                severity=finding.severity,
                probability=finding.probability,
                threshold=finding.threshold,
                last_instance_received_at=study.last_instance_received_at,
                stable_at=study.stable_at,
                scored_at=study.scoring.scored_at or now,
                raised_at=now,
                updated_at=now,
            )
            _audit(None, "alert.raised", alert, now, finding_code=code)
            logger.info("alert raised alert_id=%s study_id=%s", alert.pk, study_id)
        else:
            reopen = (
                alert.status == AlertStatus.RESOLVED
                and alert.resolution == Resolution.NO_LONGER_POSITIVE
            )
            if alert.finding_id == finding.pk and not reopen:
                continue
            if alert.status == AlertStatus.RESOLVED and not reopen:
                continue
            alert.finding = finding
            alert.probability = finding.probability
            alert.threshold = finding.threshold
            alert.scored_at = study.scoring.scored_at or now
            fields = ["finding", "probability", "threshold", "scored_at"]
            if reopen:
                alert.status = AlertStatus.OPEN
                alert.resolved_at = None
                alert.resolution = ""
                fields += ["status", "resolved_at", "resolution"]
            alert.version += 1
            alert.updated_at = now
            alert.save(update_fields=[*fields, "version", "updated_at"])
            _audit(None, "alert.updated", alert, now, reopened=reopen)
        changed.append(alert)
    for code in negative:
        alert = existing.get(code)
        if alert is not None and alert.status != AlertStatus.RESOLVED:
            _resolve(alert, Resolution.NO_LONGER_POSITIVE, None, now)
            changed.append(alert)
    for alert in changed:
        _announce(alert)
    return changed


def _resolve(alert: Alert, resolution: str, user: Any, now: datetime) -> None:
    alert.status = AlertStatus.RESOLVED
    alert.resolved_at = now
    alert.resolution = resolution
    alert.version += 1
    alert.updated_at = now
    alert.save(
        update_fields=["status", "resolved_at", "resolution", "version", "updated_at"]
    )
    _audit(user, "alert.resolved", alert, now, resolution=resolution)


@transaction.atomic
def resolve_alerts(
    study_id: int,
    *,
    resolution: str,
    now: datetime,
    finding_code: str | None = None,
    user: AbstractBaseUser | None = None,
) -> list[Alert]:
    """Resolve the study's unresolved alerts (or the one of ``finding_code``).

    Called when the study is final (read) or a radiologist rejects the finding.

    Args:
        study_id: the study.
        resolution: why, one of ``Resolution``'s texts.
        now: the time of the resolution (UTC).
        finding_code: only this finding's alert; None: all of the study's.
        user: who caused it, for the audit trail.

    Returns:
        The alerts resolved.
    """
    alerts = Alert.objects.select_for_update().unresolved().filter(study_id=study_id)
    if finding_code is not None:
        alerts = alerts.filter(finding_code=finding_code)
    resolved = list(alerts)
    final = resolution == Resolution.STUDY_FINAL
    for alert in resolved:
        _resolve(alert, resolution, user, now)
        _announce(alert, bump_study=not final)
    return resolved


def resolve_if_final(study_id: int, *, now: datetime) -> list[Alert]:
    """Resolve the alerts of a study that became final elsewhere (RIS, HL7)."""
    final = WorklistEntry.objects.filter(
        study_id=study_id, reading_status=ReadingStatus.FINAL
    ).exists()
    if not final or not Alert.objects.unresolved().filter(study_id=study_id).exists():
        return []
    return resolve_alerts(study_id, resolution=Resolution.STUDY_FINAL, now=now)


@transaction.atomic
def mark_delivered(
    alert_id: int,
    user: AbstractBaseUser,
    *,
    now: datetime,
    remote_addr: str | None = None,
) -> bool:
    """Stamp the first time a charge technologist's board showed the alert.

    Only a board of someone who may act on it (``acknowledge_alerts``) counts:
    a department head watching does not make a critical finding delivered. A
    single conditional update: later receipts (other boards, reloads) change
    nothing. The receipt that delivers is audited, with who received it.

    Returns:
        Whether this receipt was the first (and so the delivery).
    """
    if not user.has_perm(ACKNOWLEDGE_ALERTS):  # type: ignore[attr-defined]
        return False
    updated = Alert.objects.filter(pk=alert_id, delivered_at__isnull=True).update(
        delivered_at=now
    )
    if updated != 1:
        return False
    record_audit(
        user=user,
        action="alert.delivered",
        object_type="alert",
        object_id=str(alert_id),
        now=now,
        remote_addr=remote_addr,
    )
    return True


@transaction.atomic
def acknowledge_alert(
    alert_id: int, user: AbstractBaseUser, *, note: str = "", now: datetime
) -> Alert:
    """A charge technologist takes charge of an alert: who, when, a note.

    Acknowledging an acknowledged alert changes nothing (the first one counts).
    An alert not yet delivered is delivered now (the person saw it).

    Raises:
        AlertResolved: the alert is already resolved.
        Alert.DoesNotExist: no such alert.
    """
    alert = Alert.objects.select_for_update().get(pk=alert_id)
    if alert.status == AlertStatus.RESOLVED:
        raise AlertResolved("this alert is already resolved")
    if alert.status == AlertStatus.ACKNOWLEDGED:
        return alert
    alert.status = AlertStatus.ACKNOWLEDGED
    alert.acknowledged_at = now
    alert.acknowledged_by_id = user.pk
    alert.acknowledgement_note = note.strip()[:1000]
    alert.delivered_at = alert.delivered_at or now
    alert.version += 1
    alert.updated_at = now
    alert.save(
        update_fields=[
            "status",
            "acknowledged_at",
            "acknowledged_by",
            "acknowledgement_note",
            "delivered_at",
            "version",
            "updated_at",
        ]
    )
    _audit(user, "alert.acknowledged", alert, now)
    _announce(alert)
    return alert


def escalation_due(severity: str, now: datetime) -> datetime:
    """Alerts of ``severity`` raised before this time are overdue."""
    minutes: dict[str, float] = settings.RADTRIAGE_ALERT_ESCALATION_MINUTES
    return now - timedelta(minutes=minutes.get(severity, minutes["critical"]))


def escalate_overdue(*, now: datetime) -> list[int]:
    """Escalate every open alert not acknowledged within its severity's minutes.

    Returns:
        The IDs of the alerts escalated by this call (each escalates once).
    """
    candidates = list(
        Alert.objects.filter(status=AlertStatus.OPEN, escalated_at__isnull=True)
        .values_list("pk", "severity", "raised_at")
        .order_by("raised_at")
    )
    return [
        pk
        for pk, severity, raised_at in candidates
        if raised_at <= escalation_due(severity, now) and escalate_alert(pk, now=now)
    ]


@transaction.atomic
def escalate_alert(alert_id: int, *, now: datetime) -> bool:
    """Escalate one overdue alert to the department heads, exactly once.

    Marks it escalated (the board shows it to department heads), then, after
    commit, emails the recipients and posts the signed webhook.

    Returns:
        Whether it escalated now (False: acknowledged, resolved or escalated).
    """
    alert = Alert.objects.select_for_update().filter(pk=alert_id).first()
    if alert is None or alert.status != AlertStatus.OPEN or alert.escalated_at:
        return False
    if alert.raised_at > escalation_due(alert.severity, now):
        return False
    alert.escalated_at = now
    alert.version += 1
    alert.updated_at = now
    alert.save(update_fields=["escalated_at", "version", "updated_at"])
    _audit(None, "alert.escalated", alert, now)
    logger.warning("alert escalated alert_id=%s study_id=%s", alert.pk, alert.study_id)
    _announce(alert, bump_study=False)
    transaction.on_commit(partial(_send_escalation, alert.pk), robust=True)
    return True


def _send_escalation(alert_id: int) -> None:
    from worklist.alerts import tasks

    tasks.send_escalation_email.apply_async((alert_id,), queue="urgent")
    if settings.RADTRIAGE_ALERT_WEBHOOK_URL:
        tasks.deliver_alert_webhook.apply_async((alert_id,), queue="urgent")


def escalation_recipients() -> list[str]:
    """RADTRIAGE_ALERT_EMAILS, else the department heads' email addresses."""
    configured: list[str] = settings.RADTRIAGE_ALERT_EMAILS
    if configured:
        return configured
    group = Group.objects.filter(name=Role.DEPARTMENT_HEAD.value).first()
    if group is None:
        return []
    return sorted(
        {u.email for u in group.user_set.filter(is_active=True).exclude(email="")}
    )


def _board_url() -> str:
    return f"http://{settings.RADTRIAGE_WEB_HOST}:{settings.RADTRIAGE_WEB_PORT}/alerts/"


def send_escalation_email(alert_id: int) -> int:
    """Email the escalation of an alert; no PHI, only IDs and times.

    Returns:
        The number of messages sent (0: no alert or no recipient).
    """
    alert = Alert.objects.filter(pk=alert_id).first()
    recipients = escalation_recipients()
    if alert is None or not recipients:
        return 0
    subject = (
        f"[RadTriage] Unacknowledged critical finding: {alert.finding_display} "
        f"(alert #{alert.pk})"
    )
    body = (
        f"Alert #{alert.pk} ({alert.finding_display}, probability "
        f"{alert.probability:.2f}) on study #{alert.study_id} was raised at "
        f"{alert.raised_at:%Y-%m-%d %H:%M:%S} UTC and has not been acknowledged.\n"
        f"Board: {_board_url()}\n"
    )
    return send_mail(subject, body, None, recipients)


def webhook_payload(alert: Alert) -> dict[str, Any]:
    """What the webhook receives: internal IDs, finding and times, no PHI."""
    return {
        "event": "alert.escalated",
        "alert_id": alert.pk,
        "study_id": alert.study_id,
        "finding_code": alert.finding_code,
        "finding": alert.finding_display,
        "severity": alert.severity,
        "probability": round(alert.probability, 4),
        "raised_at": alert.raised_at.isoformat(),
        "escalated_at": alert.escalated_at.isoformat() if alert.escalated_at else None,
        "board_url": _board_url(),
    }


def deliver_webhook(alert_id: int, *, attempt: int, now: datetime) -> bool:
    """Post an escalated alert to RADTRIAGE_ALERT_WEBHOOK_URL, signed.

    The body is JSON; ``X-RadTriage-Signature`` is ``sha256=`` and the hex
    HMAC-SHA256 of the body with RADTRIAGE_ALERT_WEBHOOK_SECRET. Each attempt
    is recorded (listed for administrators). Not one transaction: the row of a
    failed attempt must outlive the retry the failure causes.

    Returns:
        True when delivered (now or before); False when there is nothing to do.

    Raises:
        WebhookFailed: the receiver was unreachable or did not answer 2xx.
    """
    url: str = settings.RADTRIAGE_ALERT_WEBHOOK_URL
    alert = Alert.objects.filter(pk=alert_id).first()
    if not url or alert is None:
        return False
    if alert.webhook_deliveries.filter(succeeded=True).exists():
        return True
    if not url.startswith(("http://", "https://")):
        raise WebhookFailed("RADTRIAGE_ALERT_WEBHOOK_URL must be http(s)")
    body = json.dumps(webhook_payload(alert), sort_keys=True).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, settings.RADTRIAGE_ALERT_WEBHOOK_SECRET),
        },
    )
    status: int | None = None
    error = ""
    try:
        with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
            request, timeout=settings.RADTRIAGE_ALERT_WEBHOOK_TIMEOUT
        ) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        error = str(getattr(exc, "reason", exc))[:500]
    ok = status is not None and 200 <= status < 300
    WebhookDelivery.objects.create(
        alert=alert,
        attempt=attempt,
        url=url[:512],
        succeeded=ok,
        status_code=status,
        error=error,
        attempted_at=now,
    )
    if not ok:
        logger.warning(
            "alert webhook failed alert_id=%s attempt=%s error=%s",
            alert_id,
            attempt,
            error,
        )
        raise WebhookFailed(error or f"HTTP {status}")
    return True


# --- the board's figures ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoardFigures:
    """Alert-fatigue figures shown on the board.

    ``ppv`` is the share of alerts the radiologists agreed with among those
    they judged (agree or disagree), over ``window_days``; None before any.
    """

    alerts_last_24h: int
    alerts_per_day: float
    window_days: int
    ppv: float | None
    judged: int
    shift_alerts: int
    shift_hours: int
    shift_cap: int


def board_figures(*, now: datetime, window_days: int = 7) -> BoardFigures:
    """Alerts per day, their PPV from radiologist feedback, alerts this shift."""
    since = now - timedelta(days=window_days)
    recent = Alert.objects.filter(raised_at__gte=since)
    feedback = AIFeedback.objects.filter(
        study_id=OuterRef("study_id"), finding_code=OuterRef("finding_code")
    )
    judged = recent.annotate(
        agreed=Exists(feedback.filter(verdict=FeedbackVerdict.AGREE)),
        rejected=Exists(feedback.filter(verdict=FeedbackVerdict.DISAGREE)),
    ).filter(Q(agreed=True) | Q(rejected=True))
    verdicts = list(judged.values_list("agreed", flat=True))
    shift_hours: int = settings.RADTRIAGE_ALERT_SHIFT_HOURS
    return BoardFigures(
        alerts_last_24h=recent.filter(raised_at__gte=now - timedelta(days=1)).count(),
        alerts_per_day=recent.count() / window_days,
        window_days=window_days,
        ppv=(sum(verdicts) / len(verdicts)) if verdicts else None,
        judged=len(verdicts),
        shift_alerts=recent.filter(
            raised_at__gte=now - timedelta(hours=shift_hours)
        ).count(),
        shift_hours=shift_hours,
        shift_cap=settings.RADTRIAGE_ALERT_SHIFT_CAP,
    )
