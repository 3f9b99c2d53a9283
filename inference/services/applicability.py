"""Which of a study's series a model would score, as the study stands."""

from __future__ import annotations

from inference import manifest as mf
from inference.services import _scoring_sql
from inference.services.model_registry import RegistryEntry
from triage.geometry import axial_of_plane
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
    counts: dict[int, int] = {}
    planes: dict[int, str] = {}
    for row in _scoring_sql.instances_of_study(study_id):
        counts[row.series_id] = counts.get(row.series_id, 0) + 1
        planes.setdefault(row.series_id, row.plane)
    return series_facts(
        body_part, _scoring_sql.series_of_study(study_id), counts, planes
    )


def series_facts(
    study_body_part: str,
    series_rows: list[_scoring_sql.SeriesRow],
    counts: dict[int, int],
    planes: dict[int, str],
) -> tuple[mf.SeriesFacts, ...]:
    """The series as applicability sees them.

    Args:
        counts: Instances stored, per series.
        planes: The plane ingest recorded of each series' first image in slice
            order (``Instance.plane``), which is the series'.
    """
    return tuple(
        mf.SeriesFacts(
            series_id=s.pk,
            modality=s.modality,
            body_part=s.body_part_examined or study_body_part,
            series_description=s.series_description,
            instance_count=counts.get(s.pk, 0),
            axial=axial_of_plane(planes[s.pk]) if s.pk in planes else None,
        )
        for s in series_rows
    )
