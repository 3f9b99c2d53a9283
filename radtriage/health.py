"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from inference import runtime
from radtriage.celery import app as celery_app

logger = logging.getLogger(__name__)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_broker() -> str:
    if settings.EMBEDDED:
        return "ok (in-process)"
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _check_storage() -> str:
    storage: Path = settings.RADTRIAGE_STORAGE_DIR
    storage.mkdir(parents=True, exist_ok=True)
    # A real write proves the volume is mounted read-write and not full.
    with tempfile.NamedTemporaryFile(dir=storage, prefix=".readyz-") as probe:
        probe.write(b"ok")
        probe.flush()
        os.fsync(probe.fileno())
    return "ok"


def _inference() -> dict[str, object]:
    """Where each model runs: its session's provider in a process that loaded
    it (worker, serve), else where it would run (the web process loads none)."""
    from inference import services

    plan = runtime.device_plan()
    loaded, _ = services.discover_models(Path(settings.RADTRIAGE_MODELS_DIR))
    return {
        "device": plan.device,
        "providers": list(plan.providers),
        "reason": plan.reason,
        "models": {
            d.model_id: {
                "version": d.version,
                "provider": d.provider,
                "loaded": d.loaded,
                "reason": d.reason,
            }
            for d in runtime.model_devices([i.manifest for i in loaded])
        },
    }


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Database, broker and DICOM storage are all reachable; where models run."""
    checks: dict[str, str] = {}
    ready = True
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("storage", _check_storage),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            ready = False
            checks[name] = f"unavailable: {type(exc).__name__}"
            logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
    try:
        inference: dict[str, object] = _inference()
    except Exception as exc:  # noqa: BLE001 - reported, not a readiness failure
        inference = {"error": type(exc).__name__}
        logger.warning("inference report failed: %s", type(exc).__name__)
    return JsonResponse(
        {
            "status": "ok" if ready else "unavailable",
            "checks": checks,
            "inference": inference,
        },
        status=200 if ready else 503,
    )
