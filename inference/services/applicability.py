"""Which of a study's series a model would score, as the study stands."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
from django.conf import settings

from inference import manifest as mf
from inference.services import _scoring_sql
from inference.services.model_registry import RegistryEntry
from triage.geometry import axial_of_plane, is_axial
from triage.models import Study


def chooses(
    entry: RegistryEntry, facts: tuple[mf.SeriesFacts, ...], series: frozenset[int]
) -> bool:
    """Whether the model would score one of ``series`` among the study's."""
    if entry.loaded is None:
        return False
    choice = mf.choose_series(entry.loaded.manifest.applicability, facts)
    return isinstance(choice, mf.Applicable) and choice.series_id in series


def current_series_facts(study_id: int) -> tuple[mf.SeriesFacts, ...]:
    """The study's series as applicability sees them now (read, not locked)."""
    body_part = (
        Study.objects.filter(pk=study_id)
        .values_list("body_part_examined", flat=True)
        .first()
    )
    if body_part is None:
        return ()
    storage = Path(settings.RADTRIAGE_STORAGE_DIR)
    counts: dict[int, int] = {}
    firsts: dict[int, FirstImage] = {}
    for row in _scoring_sql.instances_of_study(study_id):
        counts[row.series_id] = counts.get(row.series_id, 0) + 1
        if row.series_id not in firsts:
            firsts[row.series_id] = FirstImage(row.plane, storage / row.storage_path)
    return series_facts(
        body_part, _scoring_sql.series_of_study(study_id), counts, firsts
    )


@dataclass(frozen=True, slots=True)
class FirstImage:
    """A series' first image in slice order, whose plane is the series'."""

    plane: str  # as recorded at ingest; "" before planes were recorded
    path: Path

    def axial(self) -> bool | None:
        if self.plane:
            return axial_of_plane(self.plane)
        return _axial(self.path)  # stored before planes were recorded


def series_facts(
    study_body_part: str,
    series_rows: list[_scoring_sql.SeriesRow],
    counts: dict[int, int],
    firsts: dict[int, FirstImage],
) -> tuple[mf.SeriesFacts, ...]:
    # May read a header per series (images stored before planes were
    # recorded): call outside transactions.
    return tuple(
        mf.SeriesFacts(
            series_id=s.pk,
            modality=s.modality,
            body_part=s.body_part_examined or study_body_part,
            series_description=s.series_description,
            instance_count=counts.get(s.pk, 0),
            axial=first.axial() if (first := firsts.get(s.pk)) else None,
        )
        for s in series_rows
    )


def _axial(path: Path) -> bool | None:
    try:
        ds = pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=["ImageOrientationPatient"]
        )
    except (OSError, ValueError, pydicom.errors.InvalidDicomError):
        return None
    orientation = ds.get("ImageOrientationPatient")
    return is_axial([float(v) for v in orientation] if orientation else None)
