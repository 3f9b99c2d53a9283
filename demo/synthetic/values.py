"""Public value types of the synthetic study generator: kinds and ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from demo.synthetic._shared import Mask


class HemorrhageType(StrEnum):
    """Kind of acute intracranial haemorrhage a synthetic head CT can show."""

    INTRAPARENCHYMAL = "intraparenchymal"
    SUBDURAL = "subdural"
    EPIDURAL = "epidural"
    SUBARACHNOID = "subarachnoid"
    INTRAVENTRICULAR = "intraventricular"


class RadiographModality(StrEnum):
    """Projection radiography modalities (DICOM Modality)."""

    DX = "DX"
    CR = "CR"


class RadiographBodyPart(StrEnum):
    """Limbs the radiograph generator can draw (DICOM BodyPartExamined)."""

    FOREARM = "FOREARM"
    LEG = "LEG"
    HUMERUS = "HUMERUS"


class Photometric(StrEnum):
    """Photometric interpretation of a greyscale image."""

    MONOCHROME1 = "MONOCHROME1"  # low values bright (CR habit)
    MONOCHROME2 = "MONOCHROME2"  # low values dark


class FracturePattern(StrEnum):
    """Orientation of a fracture line relative to the bone's long axis."""

    TRANSVERSE = "transverse"
    OBLIQUE = "oblique"


@dataclass(frozen=True, slots=True)
class HemorrhageTruth:
    """Where the haemorrhage of a synthetic head CT is.

    Attributes:
        hemorrhage_type: Kind of bleed.
        slice_labels: One flag per slice, inferior to superior (instance order): true
            where the slice holds at least one blood pixel.
        centre_slice: Index of the slice with the largest blood area.
        centre_row: Row (pixels) of a blood pixel well inside the bleed on that slice.
        centre_col: Column (pixels) of that pixel.
        volume_ml: Blood volume (mL).
    """

    hemorrhage_type: HemorrhageType
    slice_labels: tuple[bool, ...]
    centre_slice: int
    centre_row: int
    centre_col: int
    volume_ml: float


@dataclass(frozen=True, slots=True)
class FractureTruth:
    """Where the fracture of a synthetic radiograph is.

    Attributes:
        bone_index: Which bone is broken (0 = radius, tibia or humerus; 1 = ulna or
            fibula); ``Radiograph.bone_labels`` holds ``bone_index + 1`` on it.
        centre_row: Row (pixels) where the fracture line crosses the bone's axis.
        centre_col: Column (pixels) of that point.
        pattern: Transverse or oblique.
        angle_deg: Angle between the fracture line and the bone's cross-section.
        displacement_mm: Sideways shift of the distal fragment (mm); 0 = undisplaced.
    """

    bone_index: int
    centre_row: int
    centre_col: int
    pattern: FracturePattern
    angle_deg: float
    displacement_mm: float


@dataclass(frozen=True, slots=True, eq=False)
class CtHeadVolume:
    """A synthetic head CT volume, before any DICOM.

    Attributes:
        hu: Hounsfield units, shape (slices, size, size), slice 0 most inferior; rows
            run anterior to posterior, columns patient right to left.
        blood_mask: True on blood voxels, same shape as ``hu``.
        slice_labels: Per slice, whether it holds blood.
        hemorrhage: Ground truth, or None for a normal head.
        pixel_spacing_mm: In-plane pixel size (mm).
        slice_spacing_mm: Distance between slice centres (mm); also their thickness.
        slice_z_mm: Patient z (mm, superior positive) of each slice centre.
        noise_hu: Standard deviation of the quantum noise added (HU).
    """

    hu: NDArray[np.int16]
    blood_mask: Mask
    slice_labels: tuple[bool, ...]
    hemorrhage: HemorrhageTruth | None
    pixel_spacing_mm: float
    slice_spacing_mm: float
    slice_z_mm: tuple[float, ...]
    noise_hu: float


@dataclass(frozen=True, slots=True, eq=False)
class Radiograph:
    """A synthetic limb radiograph, before any DICOM.

    Attributes:
        pixels: Presentation values in [0, 4095], bright = attenuating (MONOCHROME2
            sense), shape (rows, columns); the long axis runs down the rows.
        bone_labels: 0 off bone, ``i + 1`` on bone ``i``; same shape as ``pixels``.
        fracture: Ground truth, or None for an intact limb.
        body_part: The limb drawn.
        pixel_spacing_mm: Pixel size at the detector (mm).
    """

    pixels: NDArray[np.uint16]
    bone_labels: NDArray[np.uint8]
    fracture: FractureTruth | None
    body_part: RadiographBodyPart
    pixel_spacing_mm: float

    @property
    def label(self) -> bool:
        """Whether the image shows a fracture."""
        return self.fracture is not None


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticStudy:
    """One synthetic series, ready for ``dcmwrite``, with its ground truth.

    Attributes:
        modality: "CT", "DX" or "CR".
        study_instance_uid: Study Instance UID shared by all datasets.
        series_instance_uid: Series Instance UID shared by all datasets.
        accession_number: Accession Number (fake).
        patient_id: Patient ID (fake).
        datasets: One dataset per instance, in instance order, with file meta.
        slice_labels: Per instance, whether it shows the finding.
        hemorrhage: Head CT ground truth, None when normal or not a head CT.
        fracture: Radiograph ground truth, None when intact or not a radiograph.
    """

    modality: str
    study_instance_uid: str
    series_instance_uid: str
    accession_number: str
    patient_id: str
    datasets: tuple[Dataset, ...]
    slice_labels: tuple[bool, ...]
    hemorrhage: HemorrhageTruth | None = None
    fracture: FractureTruth | None = None

    @property
    def positive(self) -> bool:
        """Whether the study shows a finding (haemorrhage or fracture)."""
        return any(self.slice_labels)
