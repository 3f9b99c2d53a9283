"""Priority, reading workflow, alerts, live updates, pages and reports."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _on_study_changed(sender: Any, study_id: int, **kwargs: Any) -> None:
    """Something the study's row shows may have changed: refresh its entry."""
    from worklist import refresh

    try:
        refresh.queue_refresh(study_id)
    except Exception:
        # The change itself is committed; the periodic refresh catches up.
        logger.exception("refreshing the worklist entry failed study_id=%s", study_id)


def _on_study_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A new study gets its worklist entry in the same transaction."""
    if not created:
        return
    from worklist.models import WorklistEntry

    WorklistEntry.objects.get_or_create(study_id=instance.pk)


# The receivers of study_scored let failures through: the scoring follow-up
# that sends it keeps itself pending and is retried until both succeed.


def _on_study_scored_priority(sender: Any, study_id: int, **kwargs: Any) -> None:
    """Scoring finished: the study's priority and reading status move on.

    Refreshed once the follow-up commits, with what its alerts receiver
    changed in the same transaction: one write and one delta.
    """
    from worklist import refresh

    refresh.queue_refresh(study_id)


def _on_study_scored_alerts(sender: Any, study_id: int, **kwargs: Any) -> None:
    """New findings may raise, update or resolve critical-finding alerts."""
    from django.utils import timezone

    from worklist.alerts import services

    services.raise_alerts(study_id, now=timezone.now())


def _on_study_changed_alerts(sender: Any, study_id: int, **kwargs: Any) -> None:
    """A study finalized elsewhere (RIS) resolves its alerts."""
    from django.utils import timezone

    from worklist.alerts import services

    try:
        services.resolve_if_final(study_id, now=timezone.now())
    except Exception:
        logger.exception("resolving alerts failed study_id=%s", study_id)


def _on_report_received(sender: Any, study_id: int, report: Any, **kwargs: Any) -> None:
    """A RIS report: where reading ends in the RIS, it moves the reading state.

    In the report's transaction, and failures go through: a report the worklist
    could not apply is not acknowledged as applied (the sender sends it again).
    """
    from django.utils import timezone

    from worklist import services

    services.apply_ris_report(
        study_id, report.status, report.reported_at, now=timezone.now()
    )


def _on_logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    """A user signed out: their session's websockets close."""
    from worklist import broadcast

    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        broadcast.end_session(key)


def _note_password_change(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Before a user is saved: does the save change the password?"""
    if instance.pk is None:
        return
    stored = (
        type(instance)
        .objects.filter(pk=instance.pk)
        .values_list("password", flat=True)
        .first()
    )
    instance._radtriage_password_changed = (
        stored is not None and stored != instance.password
    )


def _on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A deactivated account's open websockets close once that is committed;
    so do those of an account whose password changed (a reset after a theft
    must not leave the thief's open board receiving)."""
    changed = getattr(instance, "_radtriage_password_changed", False)
    if getattr(instance, "is_active", True) and not changed:
        return
    from django.db import transaction

    from worklist import broadcast

    user_id = instance.pk
    transaction.on_commit(lambda: broadcast.end_user_sessions(user_id))


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = "Worklist"

    def ready(self) -> None:
        from django.conf import settings
        from django.contrib.auth.signals import user_logged_out
        from django.db.models.signals import post_save, pre_save

        from triage.signals import report_received, study_changed

        user_logged_out.connect(_on_logged_out, dispatch_uid="worklist-logout")
        pre_save.connect(
            _note_password_change,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="worklist-user-password",
        )
        post_save.connect(
            _on_user_saved,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="worklist-user-deactivated",
        )

        post_save.connect(
            _on_study_saved, sender="triage.Study", dispatch_uid="worklist-entry"
        )
        study_changed.connect(_on_study_changed, dispatch_uid="worklist-priority")
        study_changed.connect(_on_study_changed_alerts, dispatch_uid="worklist-alerts")
        report_received.connect(_on_report_received, dispatch_uid="worklist-report")
        # Registers the alert tasks with Celery (autodiscovery finds worklist.tasks).
        importlib.import_module("worklist.alerts.tasks")
        # The scoring layer, when installed, says when findings changed.
        if importlib.util.find_spec("inference.signals") is not None:
            inference_signals = importlib.import_module("inference.signals")
            scored = getattr(inference_signals, "study_scored", None)
            if scored is not None:
                scored.connect(
                    _on_study_scored_priority, dispatch_uid="worklist-scored"
                )
                scored.connect(
                    _on_study_scored_alerts, dispatch_uid="worklist-scored-alerts"
                )
