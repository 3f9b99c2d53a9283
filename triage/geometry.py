"""Patient-space geometry of an image plane, from its DICOM header values.

Plain Python: no framework imports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

# cos 20°: a plane whose normal lies within 20° of the patient's z axis is axial.
_AXIAL_MIN_COSINE = 0.94

#: What ingest records of an image's plane (``Instance.plane``).
AXIAL: Final = "axial"
OTHER: Final = "other"  # coronal, sagittal, oblique
UNKNOWN: Final = "unknown"  # no usable ImageOrientationPatient


def slice_normal(
    orientation: Sequence[float] | None,
) -> tuple[float, float, float] | None:
    """The plane's normal (row x column direction cosines), not normalised.

    Args:
        orientation: ImageOrientationPatient, six numbers.

    Returns:
        The normal, or None when the orientation is missing or malformed.
    """
    if orientation is None or len(orientation) != 6:
        return None
    row, col = orientation[:3], orientation[3:]
    return (
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    )


def is_axial(orientation: Sequence[float] | None) -> bool | None:
    """Whether ImageOrientationPatient describes an axial plane (±20°).

    Returns:
        None when the orientation is missing or degenerate.
    """
    normal = slice_normal(orientation)
    if normal is None:
        return None
    length = sum(v * v for v in normal) ** 0.5
    if length == 0:
        return None
    return bool(abs(normal[2]) / length >= _AXIAL_MIN_COSINE)


def plane(orientation: Sequence[float] | None) -> str:
    """``AXIAL``, ``OTHER`` or ``UNKNOWN`` for an ImageOrientationPatient."""
    axial = is_axial(orientation)
    if axial is None:
        return UNKNOWN
    return AXIAL if axial else OTHER


def axial_of_plane(recorded: str) -> bool | None:
    """:func:`is_axial` from a recorded plane (None for ``UNKNOWN``)."""
    return {AXIAL: True, OTHER: False}.get(recorded)
