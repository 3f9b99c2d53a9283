"""What one scoring run works on and what it produces, before it is stored."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from inference import manifest as mf
from inference.models import (
    ScoreStatus,
)
from inference.services import _scoring_sql
from inference.services.model_registry import RegistryEntry
from triage.pixels import BadPixelLayout, PixelLayout


class TransientScoringError(Exception):
    """Storage or database trouble that a later try may not meet; retried."""


@dataclass(frozen=True, slots=True)
class InstanceRef:
    """A stored instance of a series, as the scorer reads it (no PHI).

    ``layout``, ``order`` and ``sop_instance_uid`` are what ingest recorded;
    with them the pixels are read without parsing the file again.
    """

    pk: int
    path: Path
    sha256: str
    layout: PixelLayout | None = None
    order: float | None = None
    sop_instance_uid: str = ""

    @classmethod
    def of(cls, row: _scoring_sql.InstanceRow, storage: Path) -> InstanceRef:
        """The reference to a stored instance row."""
        try:
            layout = PixelLayout.from_json(row.pixel_layout)
        except BadPixelLayout:
            layout = None  # pydicom reads the file instead
        if row.slice_position is not None:
            order: float | None = row.slice_position
        elif row.instance_number is not None:
            order = float(row.instance_number)
        else:
            order = None
        return cls(
            row.pk,
            storage / row.storage_path,
            row.sha256,
            layout,
            order,
            row.sop_instance_uid,
        )


@dataclass(frozen=True, slots=True)
class ScoringJob:
    """What one scoring run works on, read when the study was claimed."""

    study_id: int
    started_at: datetime
    series: tuple[mf.SeriesFacts, ...]
    instances: dict[int, tuple[InstanceRef, ...]]
    # An early run (the study still receiving): the series complete when it
    # was claimed; only models choosing one of them score. None: stable study.
    early_series: frozenset[int] | None = None


@dataclass(slots=True)
class FindingOutcome:
    """One finding of a scored model, before it is stored."""

    code: str
    display: str
    severity: str
    probability: float
    threshold: float
    key_index: int
    key_instance_pk: int
    key_sop_instance_uid: str
    slice_probabilities: list[float]
    heatmap_jpeg: bytes | None


@dataclass(slots=True)
class ModelOutcome:
    """What one model did with the study."""

    entry: RegistryEntry
    status: ScoreStatus
    reason: str = ""
    series_id: int | None = None
    instance_ids: list[int] = field(default_factory=list)
    instance_set: str = ""
    device: str = ""
    duration_ms: int = 0
    findings: list[FindingOutcome] = field(default_factory=list)
    reused: bool = False
    # No result row is expected for this model, version and instance set:
    # insert without looking first (a clash falls back to an update).
    insert_first: bool = True


def instance_set_digest(refs: tuple[InstanceRef, ...]) -> str:
    """SHA-256 over the instances' ids and file hashes, in order."""
    digest = hashlib.sha256()
    for ref in refs:
        digest.update(f"{ref.pk}:{ref.sha256};".encode())
    return digest.hexdigest()
