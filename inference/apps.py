"""Model registry, preprocessing, ONNX runtime and scoring."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

logger = logging.getLogger(__name__)


def _on_study_stable(sender: Any, study_id: int, **kwargs: Any) -> None:
    """A study is stable: queue its scoring (on the queue its urgency calls for)."""
    from django.utils import timezone

    from inference import services

    try:
        # The study_changed that stability sends next shows it queued.
        services.enqueue_scoring(study_id, now=timezone.now(), announce=False)
    except Exception:
        # The study stays pending; the stuck-scoring sweeper queues it later.
        logger.exception("queueing scoring failed study_id=%s", study_id)


def _on_series_stable(
    sender: Any, study_id: int, series_id: int, **kwargs: Any
) -> None:
    """A series is complete before its study: a model needing it may score now."""
    from django.utils import timezone

    from inference import services

    try:
        services.enqueue_early_scoring(study_id, series_id, now=timezone.now())
    except Exception:
        # Only a head start is lost: the study's stability queues it anyway.
        logger.exception(
            "queueing early scoring failed study_id=%s series_id=%s",
            study_id,
            series_id,
        )


def _on_study_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    """A new study gets its scoring state in the same transaction."""
    if not created:
        return
    from inference.models import StudyScoring

    StudyScoring.objects.get_or_create(study_id=instance.pk)


def _on_report_received(sender: Any, study_id: int, report: Any, **kwargs: Any) -> None:
    """A RIS report labels the study's AI findings, in the report's transaction."""
    from django.utils import timezone

    from inference.services import monitoring

    monitoring.label_findings_from_report(report, now=timezone.now())


class InferenceConfig(AppConfig):
    name = "inference"
    verbose_name = "AI scoring"

    def ready(self) -> None:
        from celery.signals import worker_init, worker_process_init
        from django.db.models.signals import post_save
        from django.test.signals import setting_changed

        from inference import startup
        from triage.signals import report_received, series_stable, study_stable

        startup.configure_runtime()
        setting_changed.connect(
            startup.configure_runtime, dispatch_uid="inference-runtime-settings"
        )
        worker_init.connect(startup.on_worker_init, dispatch_uid="inference-device")
        worker_process_init.connect(
            startup.on_worker_process_init, dispatch_uid="inference-sessions"
        )

        post_save.connect(
            _on_study_saved, sender="triage.Study", dispatch_uid="inference-scoring"
        )
        study_stable.connect(_on_study_stable, dispatch_uid="inference-score-stable")
        report_received.connect(_on_report_received, dispatch_uid="inference-report")
        series_stable.connect(
            _on_series_stable, dispatch_uid="inference-score-stable-series"
        )
