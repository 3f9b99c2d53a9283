"""The registered models: discovery of the models folder, the site's mode and
threshold overrides (audited)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction

from inference import manifest as mf
from inference.models import (
    FindingSetting,
    ModelMode,
    RegisteredModel,
)
from inference.services._common import REASON_MAX
from triage.services import record_audit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RegistryEntry:
    """A registered model as the scorer needs it."""

    pk: int
    model_id: str
    mode: ModelMode
    loaded: mf.LoadedManifest | None
    error: str
    thresholds: dict[str, float]


_discovered: dict[
    str, tuple[tuple[Any, ...], list[mf.LoadedManifest], list[mf.LoadFailure]]
] = {}


# The discovery this process last wrote to the registry, per models folder.
_synced: dict[str, object] = {}


def _folder_signature(models_dir: Path) -> tuple[Any, ...]:
    """Names, sizes and times of the files under the models folder."""
    if not models_dir.is_dir():
        return ()
    items = []
    for path in sorted(models_dir.glob("*/*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        items.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(items)


def discover_models(
    models_dir: Path,
) -> tuple[list[mf.LoadedManifest], list[mf.LoadFailure]]:
    """Load the models folder, re-reading it only when its files changed."""
    signature = _folder_signature(models_dir)
    cached = _discovered.get(str(models_dir))
    if cached is not None and cached[0] == signature:
        return cached[1], cached[2]
    loaded, failures = mf.discover(models_dir)
    _discovered[str(models_dir)] = (signature, loaded, failures)
    return loaded, failures


@transaction.atomic
def sync_registry() -> list[RegistryEntry]:
    """Bring the registered models in step with RADTRIAGE_MODELS_DIR.

    New models are registered in RADTRIAGE_NEW_MODEL_MODE; a model whose manifest
    or file is broken keeps its row with ``load_error`` set (an error for that
    model alone); a model gone from the folder is reported as missing. The
    site's mode and threshold overrides are kept.

    Returns:
        Every registered model, loaded or not.
    """
    models_dir = Path(settings.RADTRIAGE_MODELS_DIR)
    loaded, failures = discover_models(models_dir)
    rows = {r.model_id: r for r in RegisteredModel.objects.select_for_update()}
    seen: set[str] = set()
    by_id: dict[str, mf.LoadedManifest] = {}
    for item in loaded:
        m = item.manifest
        seen.add(m.model_id)
        by_id[m.model_id] = item
        row = rows.get(m.model_id)
        if row is None:
            row = RegisteredModel.objects.create(
                model_id=m.model_id, mode=settings.RADTRIAGE_NEW_MODEL_MODE
            )
            rows[m.model_id] = row
        changed = (row.version, row.name, row.sha256, row.folder, row.load_error) != (
            m.version,
            m.name,
            m.sha256,
            str(item.folder),
            "",
        )
        if changed:
            row.version, row.name, row.sha256 = m.version, m.name, m.sha256
            row.folder, row.load_error = str(item.folder), ""
            row.save(
                update_fields=[
                    "version",
                    "name",
                    "sha256",
                    "folder",
                    "load_error",
                    "updated_at",
                ]
            )
        for finding in m.findings:
            FindingSetting.objects.update_or_create(
                model=row,
                code=finding.code,
                defaults={
                    "display": finding.display,
                    "severity": finding.severity.value,
                    "default_threshold": finding.threshold,
                },
            )
    for failure in failures:
        if failure.model_id in seen:
            continue
        seen.add(failure.model_id)
        row = rows.get(failure.model_id)
        if row is None:
            row = RegisteredModel.objects.create(
                model_id=failure.model_id, mode=settings.RADTRIAGE_NEW_MODEL_MODE
            )
            rows[failure.model_id] = row
        error = failure.error[:REASON_MAX]
        if row.load_error != error or row.folder != str(failure.folder):
            row.load_error, row.folder = error, str(failure.folder)
            row.save(update_fields=["load_error", "folder", "updated_at"])
            logger.warning(
                "model cannot be loaded model=%s: %s", failure.model_id, error
            )
    for model_id, row in rows.items():
        if model_id not in seen and row.load_error != "model folder is missing":
            row.load_error = "model folder is missing"
            row.save(update_fields=["load_error", "updated_at"])
    return _entries(
        [_ModelRow(r.pk, r.model_id, r.mode, r.load_error) for r in rows.values()],
        by_id,
    )


@dataclass(frozen=True, slots=True)
class _ModelRow:
    """The columns of a registered model row that the registry reads."""

    pk: int
    model_id: str
    mode: str
    load_error: str


def _model_rows() -> list[_ModelRow]:
    # Read for every study scored: columns only, no model objects.
    return [
        _ModelRow(*values)
        for values in RegisteredModel.objects.values_list(
            "pk", "model_id", "mode", "load_error"
        )
    ]


def _entries(
    rows: list[_ModelRow], by_id: dict[str, mf.LoadedManifest]
) -> list[RegistryEntry]:
    thresholds: dict[int, dict[str, float]] = {}
    for setting in FindingSetting.objects.filter(
        model_id__in=[row.pk for row in rows]
    ).only("model_id", "code", "default_threshold", "threshold_override"):
        thresholds.setdefault(setting.model_id, {})[setting.code] = setting.threshold
    return [
        RegistryEntry(
            pk=row.pk,
            model_id=row.model_id,
            mode=ModelMode(row.mode),
            loaded=by_id.get(row.model_id) if not row.load_error else None,
            error=row.load_error,
            thresholds=thresholds.get(row.pk, {}),
        )
        for row in sorted(rows, key=lambda r: r.model_id)
    ]


def registry() -> list[RegistryEntry]:
    """The registered models with the site's current mode and thresholds.

    Reads only, unless the models folder changed since this process last
    synced it (or a model is not registered yet): then ``sync_registry``.
    """
    models_dir = Path(settings.RADTRIAGE_MODELS_DIR)
    loaded, failures = discover_models(models_dir)
    rows = _model_rows()
    known = {r.model_id for r in rows}
    wanted = {i.manifest.model_id for i in loaded} | {f.model_id for f in failures}
    if _synced.get(str(models_dir)) is not _discovered.get(str(models_dir)) or (
        wanted - known
    ):
        entries = sync_registry()
        _synced[str(models_dir)] = _discovered.get(str(models_dir))
        return entries
    return _entries(rows, {i.manifest.model_id: i for i in loaded})


def _model_row_for_update(model_pk: int) -> RegisteredModel:
    return RegisteredModel.objects.select_for_update().get(pk=model_pk)


@transaction.atomic
def set_model_mode(
    model_pk: int,
    mode: ModelMode,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    now: datetime,
    remote_addr: str | None = None,
) -> None:
    """Enable (active or shadow) or disable a model for this site, audited."""
    row = _model_row_for_update(model_pk)
    if row.mode == mode:
        return
    previous = row.mode
    row.mode = mode
    row.save(update_fields=["mode", "updated_at"])
    record_audit(
        user=user,
        action="ai_model.mode_changed",
        object_type="ai_model",
        object_id=row.model_id,
        now=now,
        remote_addr=remote_addr,
        detail={"from": previous, "to": mode.value, "version": row.version},
    )


@transaction.atomic
def set_threshold_override(
    setting_pk: int,
    threshold: float | None,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    now: datetime,
    remote_addr: str | None = None,
) -> None:
    """Override (or, with None, restore) a finding's operating threshold, audited.

    Args:
        setting_pk: The FindingSetting row.
        threshold: Probability in [0, 1] at and above which the finding is
            positive for this site; None goes back to the manifest's.
    """
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError("a threshold must be within [0, 1]")
    setting = (
        FindingSetting.objects.select_for_update()
        .select_related("model")
        .get(pk=setting_pk)
    )
    if setting.threshold_override == threshold:
        return
    previous = setting.threshold_override
    setting.threshold_override = threshold
    setting.save(update_fields=["threshold_override"])
    record_audit(
        user=user,
        action="ai_model.threshold_changed",
        object_type="ai_model",
        object_id=setting.model.model_id,
        now=now,
        remote_addr=remote_addr,
        detail={
            "finding": setting.code,
            "from": previous,
            "to": threshold,
            "default": setting.default_threshold,
        },
    )
