"""DICOM packaging of the synthetic images: CT head series and limb radiographs.

UIDs, accession numbers and demographics are fake and derive from the seed and the
options, so the same call always writes the same files, and two different images
never share a UID.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from demo.synthetic.head_ct import ct_head_volume_hu
from demo.synthetic.phantom import CT_FIELD_OF_VIEW_MM
from demo.synthetic.radiograph import RADIOGRAPH_MAX_VALUE, radiograph_pixels
from demo.synthetic.values import (
    HemorrhageType,
    Photometric,
    RadiographBodyPart,
    RadiographModality,
    SyntheticStudy,
)

MANUFACTURER: Final = "RadTriage Synthetic"
# Fixed for the code base, so every file names the same implementation.
IMPLEMENTATION_CLASS_UID: Final = generate_uid(entropy_srcs=["radtriage-synthetic"])
CT_RESCALE_INTERCEPT: Final = -1024


@dataclass(frozen=True, slots=True)
class _Identity:
    patient_name: str
    patient_id: str
    birth_date: date
    sex: str
    study_uid: str
    series_uid: str
    accession_number: str
    acquired_at: datetime


def _identity(
    seed: int,
    modality: str,
    options: tuple[object, ...],
    *,
    study_instance_uid: str | None,
    patient_id: str | None,
    accession_number: str | None,
    series_number: int,
    acquired_at: datetime | None,
) -> _Identity:
    """Fake, seed-determined demographics and UIDs, overridable by the caller."""
    if acquired_at is not None and acquired_at.utcoffset() is None:
        raise ValueError("acquired_at must be timezone-aware")
    rng = np.random.default_rng([seed, 99])
    default_time = datetime(2025, 1, 1, 7, tzinfo=UTC) + timedelta(
        minutes=int(rng.integers(0, 365 * 24 * 60))
    )
    when = acquired_at or default_time
    age = int(rng.integers(18, 95))
    birth = date(when.year - age, int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    sex = "F" if rng.random() < 0.5 else "M"
    # Every option is in the entropy: two different images never share a UID.
    entropy = ["radtriage-synthetic", modality, str(seed), *map(str, options)]
    study = study_instance_uid or generate_uid(entropy_srcs=[*entropy, "study"])
    series = generate_uid(entropy_srcs=[*entropy, study, "series", str(series_number)])
    digest = int(hashlib.sha256(study.encode()).hexdigest(), 16) % 10**10
    return _Identity(
        patient_name=f"SYNTHETIC^PATIENT{seed:04d}",
        patient_id=patient_id or f"SYN{seed:08d}",
        birth_date=birth,
        sex=sex,
        study_uid=study,
        series_uid=series,
        accession_number=accession_number or f"SYN{digest:010d}",
        acquired_at=when,
    )


def _new_dataset(
    sop_class: UID, sop_instance: UID, who: _Identity, modality: str, series_number: int
) -> Dataset:
    """A dataset with file meta and the patient, study, series and equipment tags."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "RADTRIAGE_SYN1"
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    when = who.acquired_at
    day, clock = when.strftime("%Y%m%d"), when.strftime("%H%M%S")
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = day
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = clock
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S.%f%z")
    ds.TimezoneOffsetFromUTC = when.strftime("%z")
    ds.AccessionNumber = who.accession_number
    ds.Modality = modality
    ds.Manufacturer = MANUFACTURER
    ds.InstitutionName = "RadTriage Synthetic Hospital"
    ds.StationName = "SYNTH01"
    ds.ReferringPhysicianName = "SYNTHETIC^REFERRER"
    ds.SoftwareVersions = "radtriage-synthetic 1"
    ds.PatientName = who.patient_name
    ds.PatientID = who.patient_id
    ds.PatientBirthDate = who.birth_date.strftime("%Y%m%d")
    ds.PatientSex = who.sex
    ds.StudyInstanceUID = who.study_uid
    ds.SeriesInstanceUID = who.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    return ds


def make_ct_head_study(
    seed: int,
    *,
    slices: int = 32,
    size: int = 512,
    hemorrhage: HemorrhageType | str | None = None,
    noise_hu: float | None = None,
    slice_thickness_mm: float | None = None,
    study_instance_uid: str | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    series_number: int = 1,
    series_description: str | None = None,
    acquired_at: datetime | None = None,
) -> SyntheticStudy:
    """Build a CT head series (CT Image Storage, one dataset per slice).

    Stored pixels are int16 with stored = HU + 1024 (RescaleIntercept -1024),
    brain window 40/80, slices inferior to superior. UIDs, accession number and
    fake demographics derive from ``seed`` and the options unless given.

    Args:
        seed: Non-negative case number.
        slices: Number of slices (32 by default; 200 works for benchmarks).
        size: Rows and columns (230 mm field of view).
        hemorrhage: Kind of bleed, or None for a normal head.
        noise_hu: Noise standard deviation (HU); None draws 3-6 HU from the seed.
        slice_thickness_mm: See ``ct_head_volume_hu``.
        study_instance_uid: Put the series in this study (with other series).
        patient_id: Patient ID to use instead of the seed's fake one.
        accession_number: Accession Number; None derives one from the study UID.
        series_number: Series Number (several series in one study).
        series_description: None gives e.g. "AXIAL 5MM BRAIN".
        acquired_at: Aware acquisition time; None picks one in 2025 from the seed.

    Returns:
        The datasets, identifiers and ground truth.
    """
    volume = ct_head_volume_hu(
        seed,
        slices=slices,
        size=size,
        hemorrhage=hemorrhage,
        noise_hu=noise_hu,
        slice_thickness_mm=slice_thickness_mm,
    )
    kind = HemorrhageType(hemorrhage) if hemorrhage is not None else None
    who = _identity(
        seed,
        "CT",
        (slices, size, kind, noise_hu, slice_thickness_mm),
        study_instance_uid=study_instance_uid,
        patient_id=patient_id,
        accession_number=accession_number,
        series_number=series_number,
        acquired_at=acquired_at,
    )
    frame_of_reference = generate_uid(entropy_srcs=[who.series_uid, "frame"])
    pixel = round(volume.pixel_spacing_mm, 6)
    corner = round(-(size - 1) / 2 * volume.pixel_spacing_mm, 4)
    thickness = round(volume.slice_spacing_mm, 4)
    description = series_description or f"AXIAL {thickness:g}MM BRAIN"
    datasets = []
    for i in range(slices):
        sop = generate_uid(entropy_srcs=[who.series_uid, "instance", str(i)])
        ds = _new_dataset(CTImageStorage, sop, who, "CT", series_number)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDescription = "CT HEAD WO CONTRAST"
        ds.SeriesDescription = description
        ds.BodyPartExamined = "HEAD"
        ds.PatientPosition = "HFS"
        ds.ManufacturerModelName = "Phantom CT 64"
        ds.KVP = 120
        ds.XRayTubeCurrent = 300
        ds.ExposureTime = 1000
        ds.ConvolutionKernel = "H30s"
        ds.SliceThickness = thickness
        ds.SpacingBetweenSlices = thickness
        ds.ReconstructionDiameter = CT_FIELD_OF_VIEW_MM
        ds.GantryDetectorTilt = 0
        ds.FrameOfReferenceUID = frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = i + 1
        z = round(volume.slice_z_mm[i], 3)
        ds.ImagePositionPatient = [corner, corner, z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = z
        ds.PixelSpacing = [pixel, pixel]
        ds.RescaleIntercept = CT_RESCALE_INTERCEPT
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 80
        ds.WindowCenterWidthExplanation = "BRAIN"
        stored = (volume.hu[i] - CT_RESCALE_INTERCEPT).astype(np.int16)
        ds.set_pixel_data(stored, "MONOCHROME2", 16, generate_instance_uid=False)
        datasets.append(ds)
    return SyntheticStudy(
        modality="CT",
        study_instance_uid=who.study_uid,
        series_instance_uid=who.series_uid,
        accession_number=who.accession_number,
        patient_id=who.patient_id,
        datasets=tuple(datasets),
        slice_labels=volume.slice_labels,
        hemorrhage=volume.hemorrhage,
    )


def make_radiograph_study(
    seed: int,
    *,
    modality: RadiographModality | str = RadiographModality.DX,
    body_part: RadiographBodyPart | str = RadiographBodyPart.FOREARM,
    fracture: bool = False,
    size: tuple[int, int] = (1024, 768),
    photometric: Photometric | str | None = None,
    view_position: str = "AP",
    study_instance_uid: str | None = None,
    patient_id: str | None = None,
    accession_number: str | None = None,
    series_number: int = 1,
    acquired_at: datetime | None = None,
) -> SyntheticStudy:
    """Build a one-image limb radiograph series (DX for presentation, or CR).

    Pixels are 12 bits stored in 16 (unsigned); MONOCHROME1 stores 4095 minus the
    MONOCHROME2 value, so bone is dark in the stored values.

    Args:
        seed: Non-negative case number.
        modality: DX (Digital X-Ray Image Storage - For Presentation) or CR
            (Computed Radiography Image Storage).
        body_part: FOREARM, LEG or HUMERUS.
        fracture: Whether one bone is broken.
        size: (rows, columns) in pixels.
        photometric: None gives MONOCHROME2 for DX and MONOCHROME1 for CR.
        view_position: DICOM ViewPosition, e.g. "AP", "PA", "LL".
        study_instance_uid: Put the series in this study.
        patient_id: Patient ID to use instead of the seed's fake one.
        accession_number: Accession Number; None derives one from the study UID.
        series_number: Series Number.
        acquired_at: Aware acquisition time; None picks one in 2025 from the seed.

    Returns:
        The dataset, identifiers and ground truth.
    """
    kind = RadiographModality(modality)
    image = radiograph_pixels(seed, body_part=body_part, fracture=fracture, size=size)
    if photometric is None:
        photometric = (
            Photometric.MONOCHROME1
            if kind is RadiographModality.CR
            else Photometric.MONOCHROME2
        )
    photo = Photometric(photometric)
    stored = image.pixels
    if photo is Photometric.MONOCHROME1:
        stored = (RADIOGRAPH_MAX_VALUE - image.pixels).astype(np.uint16)
    who = _identity(
        seed,
        kind.value,
        (image.body_part, fracture, size, photo, view_position),
        study_instance_uid=study_instance_uid,
        patient_id=patient_id,
        accession_number=accession_number,
        series_number=series_number,
        acquired_at=acquired_at,
    )
    sop = generate_uid(entropy_srcs=[who.series_uid, "instance", "0"])
    is_dx = kind is RadiographModality.DX
    sop_class = (
        DigitalXRayImageStorageForPresentation
        if is_dx
        else ComputedRadiographyImageStorage
    )
    ds = _new_dataset(sop_class, sop, who, kind.value, series_number)
    ds.ImageType = ["DERIVED", "PRIMARY"] if is_dx else ["ORIGINAL", "PRIMARY"]
    part = image.body_part.value
    ds.StudyDescription = f"XR {part}"
    ds.SeriesDescription = f"{part} {view_position}"
    ds.BodyPartExamined = part
    ds.ViewPosition = view_position
    ds.ImageLaterality = "L" if seed % 2 else "R"
    ds.PatientOrientation = ["L", "F"]
    ds.ManufacturerModelName = "Phantom DR" if is_dx else "Phantom CR"
    ds.KVP = 55 + seed % 11
    ds.DistanceSourceToDetector = 1000
    pixel = round(image.pixel_spacing_mm, 6)
    ds.ImagerPixelSpacing = [pixel, pixel]
    ds.PixelSpacing = [pixel, pixel]
    if is_dx:
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
    ds.PixelIntensityRelationship = "LOG"
    # -1: higher values mean less X-ray reached the detector (bone bright).
    ds.PixelIntensityRelationshipSign = -1 if photo is Photometric.MONOCHROME2 else 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.InstanceNumber = 1
    ds.set_pixel_data(stored, photo.value, 12, generate_instance_uid=False)
    return SyntheticStudy(
        modality=kind.value,
        study_instance_uid=who.study_uid,
        series_instance_uid=who.series_uid,
        accession_number=who.accession_number,
        patient_id=who.patient_id,
        datasets=(ds,),
        slice_labels=(image.label,),
        fracture=image.fracture,
    )


def write_study(study: SyntheticStudy, folder: Path | str) -> list[Path]:
    """Write each instance of ``study`` as a DICOM Part 10 file in ``folder``.

    Args:
        study: The series to write.
        folder: Target directory, created if missing. File names carry the
            modality, series and instance numbers only (no identifiers).

    Returns:
        The paths written, in instance order.
    """
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in study.datasets:
        path = target / (
            f"{study.modality}_{int(ds.SeriesNumber):03d}_{int(ds.InstanceNumber):05d}.dcm"
        )
        dcmwrite(path, ds, enforce_file_format=True)
        paths.append(path)
    return paths
