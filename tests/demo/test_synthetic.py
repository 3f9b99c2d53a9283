"""Tests of the synthetic study generator (plain pytest, no database)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from pydicom import dcmread
from pydicom.pixels.processing import apply_rescale
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)

from demo.synthetic import (
    HemorrhageType,
    RadiographBodyPart,
    SyntheticStudy,
    ct_head_volume_hu,
    make_ct_head_study,
    make_radiograph_study,
    radiograph_pixels,
    write_study,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pydicom.dataset import Dataset


@pytest.fixture(autouse=True)
def strict_pydicom_writing() -> Iterator[None]:
    """Make pydicom refuse invalid values (VR lengths, formats) when writing."""
    settings = pydicom.config.settings
    before = settings.writing_validation_mode
    settings.writing_validation_mode = pydicom.config.RAISE
    yield
    settings.writing_validation_mode = before


def _round_trip(study: SyntheticStudy, folder: Path) -> list[Dataset]:
    paths = write_study(study, folder)
    assert [p.name for p in paths] == sorted(p.name for p in folder.iterdir())
    return [dcmread(p) for p in paths]


def _hu(ds: Dataset) -> np.ndarray:
    return np.asarray(apply_rescale(ds.pixel_array, ds), dtype=np.float64)


@pytest.fixture(scope="module")
def small_ct() -> SyntheticStudy:
    return make_ct_head_study(7, slices=24, size=128)


def test_ct_head_files_round_trip_as_ct_images(
    small_ct: SyntheticStudy, tmp_path: Path
) -> None:
    datasets = _round_trip(small_ct, tmp_path)

    assert len(datasets) == 24
    for ds in datasets:
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == CTImageStorage
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == CTImageStorage
        assert ds.Modality == "CT"
        assert ds.BodyPartExamined == "HEAD"
        assert ds.StudyDescription == "CT HEAD WO CONTRAST"
        assert ds.SeriesDescription == "AXIAL 5MM BRAIN"
        assert ds.StudyInstanceUID == small_ct.study_instance_uid
        assert ds.SeriesInstanceUID == small_ct.series_instance_uid
        assert ds.AccessionNumber == small_ct.accession_number
        assert str(ds.PatientName) == "SYNTHETIC^PATIENT0007"
        assert ds.PatientID == small_ct.patient_id
        assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (128, 128, 1)
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 16, 15)
        assert ds.PixelRepresentation == 1
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.RescaleSlope, ds.RescaleIntercept) == (1, -1024)
        assert (ds.WindowCenter, ds.WindowWidth) == (40, 80)
        assert ds.pixel_array.dtype == np.int16
        assert ds.pixel_array.shape == (128, 128)
        assert ds.pixel_array.min() >= 0  # stored = HU + 1024
    assert len({ds.SOPInstanceUID for ds in datasets}) == 24


def test_ct_head_hounsfield_units_are_plausible(small_ct: SyntheticStudy) -> None:
    hu = np.stack([_hu(ds) for ds in small_ct.datasets])
    z = [float(ds.ImagePositionPatient[2]) for ds in small_ct.datasets]
    # Centrum semiovale: above the ventricles, 20 mm left of the midline.
    above_ventricles = int(np.argmin(np.abs(np.array(z) - 112)))
    brain = hu[above_ventricles, 60:68, 72:80]

    assert abs(hu[:, :8, :8].mean() + 1000) < 30  # air
    assert 20 <= brain.mean() <= 45
    assert hu.max() > 700  # skull


def test_ct_head_study_at_full_size(tmp_path: Path) -> None:
    (ds,) = _round_trip(make_ct_head_study(3, slices=1), tmp_path)

    assert ds.pixel_array.shape == (512, 512)
    assert float(ds.PixelSpacing[0]) == pytest.approx(0.449, abs=0.001)
    assert float(ds.SliceThickness) == 5


def test_same_seed_gives_identical_pixels_and_uids() -> None:
    first = make_ct_head_study(11, slices=3, size=64)
    again = make_ct_head_study(11, slices=3, size=64)

    assert first.study_instance_uid == again.study_instance_uid
    assert first.accession_number == again.accession_number
    for a, b in zip(first.datasets, again.datasets, strict=True):
        assert a.SOPInstanceUID == b.SOPInstanceUID
        assert a.PixelData == b.PixelData


def test_different_seeds_give_different_pixels_and_uids() -> None:
    a = make_ct_head_study(11, slices=3, size=64)
    b = make_ct_head_study(12, slices=3, size=64)

    assert a.study_instance_uid != b.study_instance_uid
    assert a.patient_id != b.patient_id
    assert a.datasets[1].PixelData != b.datasets[1].PixelData


def test_different_options_never_share_uids() -> None:
    normal = make_ct_head_study(11, slices=24, size=64)
    bleed = make_ct_head_study(11, slices=24, size=64, hemorrhage="subdural")

    assert normal.study_instance_uid != bleed.study_instance_uid
    assert normal.accession_number != bleed.accession_number
    assert not {ds.SOPInstanceUID for ds in normal.datasets} & {
        ds.SOPInstanceUID for ds in bleed.datasets
    }


def test_series_can_share_a_study_given_by_the_caller() -> None:
    when = datetime.fromisoformat("2025-03-04T05:06:07+01:00")
    study = "1.2.826.0.1.3680043.8.498.1"
    ct = make_ct_head_study(
        5,
        slices=2,
        size=64,
        series_number=2,
        study_instance_uid=study,
        patient_id="P123",
        accession_number="ACC123",
        acquired_at=when,
    )
    xr = make_radiograph_study(
        5,
        size=(128, 96),
        series_number=3,
        study_instance_uid=study,
        patient_id="P123",
        accession_number="ACC123",
        acquired_at=when,
    )

    for ds in (*ct.datasets, *xr.datasets):
        assert ds.StudyInstanceUID == study
        assert (ds.PatientID, ds.AccessionNumber) == ("P123", "ACC123")
        assert (ds.StudyDate, ds.StudyTime) == ("20250304", "050607")
        assert ds.TimezoneOffsetFromUTC == "+0100"
    assert ct.series_instance_uid != xr.series_instance_uid
    assert [ds.SeriesNumber for ds in (*ct.datasets, *xr.datasets)] == [2, 2, 3]


def test_naive_acquisition_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make_ct_head_study(1, slices=1, size=64, acquired_at=datetime(2025, 1, 1))  # noqa: DTZ001


def test_negative_seed_is_refused() -> None:
    with pytest.raises(ValueError, match="seed"):
        ct_head_volume_hu(-1, slices=1, size=64)


def test_positions_advance_monotonically_by_the_slice_spacing(
    small_ct: SyntheticStudy,
) -> None:
    datasets = small_ct.datasets
    z = np.array([float(ds.ImagePositionPatient[2]) for ds in datasets])

    assert [ds.InstanceNumber for ds in datasets] == list(range(1, 25))
    assert np.allclose(np.diff(z), float(datasets[0].SliceThickness))
    assert [float(ds.SliceLocation) for ds in datasets] == pytest.approx(z)
    for ds in datasets:
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert ds.FrameOfReferenceUID == datasets[0].FrameOfReferenceUID


def test_slab_thinner_than_the_head_uses_thinner_slices() -> None:
    volume = ct_head_volume_hu(2, slices=200, size=32, noise_hu=0)

    assert volume.slice_spacing_mm == pytest.approx(0.8)
    assert volume.hu.shape == (200, 32, 32)


@pytest.mark.parametrize("kind", list(HemorrhageType))
def test_bleed_slices_are_marked_and_blood_is_dense_at_the_centre(
    kind: HemorrhageType,
) -> None:
    bleed = ct_head_volume_hu(21, slices=24, size=192, hemorrhage=kind)
    normal = ct_head_volume_hu(21, slices=24, size=192)
    truth = bleed.hemorrhage
    assert truth is not None
    k, r, c = truth.centre_slice, truth.centre_row, truth.centre_col

    assert truth.hemorrhage_type is kind
    assert truth.slice_labels == bleed.slice_labels
    assert list(bleed.slice_labels) == np.any(bleed.blood_mask, axis=(1, 2)).tolist()
    assert bleed.slice_labels[k]
    assert bleed.blood_mask[k, r, c]
    assert truth.volume_ml > 0
    patch = bleed.hu[k, r - 1 : r + 2, c - 1 : c + 2].mean()
    before = normal.hu[k, r - 1 : r + 2, c - 1 : c + 2].mean()
    assert 45 <= patch <= 100
    assert patch >= before + 10  # denser than the brain or CSF it replaced
    assert normal.hemorrhage is None
    assert not any(normal.slice_labels)


@pytest.mark.parametrize("kind", list(HemorrhageType))
def test_slices_without_blood_are_those_of_the_normal_head(
    kind: HemorrhageType,
) -> None:
    bleed = ct_head_volume_hu(22, slices=24, size=96, hemorrhage=kind, noise_hu=0)
    normal = ct_head_volume_hu(22, slices=24, size=96, noise_hu=0)
    clear = [i for i, marked in enumerate(bleed.slice_labels) if not marked]

    assert clear  # every kind leaves some slices free
    assert np.array_equal(bleed.hu[clear], normal.hu[clear])
    gain = bleed.hu[bleed.blood_mask] - normal.hu[bleed.blood_mask].astype(int)
    assert np.median(gain) >= 15  # blood is denser than what it replaced


def test_hemorrhage_may_be_named_by_its_string() -> None:
    volume = ct_head_volume_hu(4, slices=24, size=64, hemorrhage="epidural")

    assert volume.hemorrhage is not None
    assert volume.hemorrhage.hemorrhage_type is HemorrhageType.EPIDURAL


def test_dx_radiograph_round_trips_as_digital_x_ray(tmp_path: Path) -> None:
    study = make_radiograph_study(5, size=(256, 192))
    (ds,) = _round_trip(study, tmp_path)

    assert ds.SOPClassUID == DigitalXRayImageStorageForPresentation
    assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
    assert ds.Modality == "DX"
    assert ds.PresentationIntentType == "FOR PRESENTATION"
    assert (ds.BodyPartExamined, ds.ViewPosition) == ("FOREARM", "AP")
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 12, 11)
    assert ds.PixelRepresentation == 0
    assert ds.pixel_array.dtype == np.uint16
    assert ds.pixel_array.shape == (256, 192)
    assert ds.pixel_array.max() <= 4095
    assert float(ds.ImagerPixelSpacing[0]) == pytest.approx(320 / 256, abs=1e-4)
    assert study.slice_labels == (False,)
    assert study.fracture is None


def test_cr_is_monochrome1_by_default_and_inverted() -> None:
    dx = make_radiograph_study(5, size=(256, 192), fracture=True)
    cr = make_radiograph_study(5, modality="CR", size=(256, 192), fracture=True)
    (dx_ds,), (cr_ds,) = dx.datasets, cr.datasets

    assert cr_ds.SOPClassUID == ComputedRadiographyImageStorage
    assert cr_ds.Modality == "CR"
    assert cr_ds.PhotometricInterpretation == "MONOCHROME1"
    assert np.array_equal(cr_ds.pixel_array, 4095 - dx_ds.pixel_array)
    assert cr.fracture == dx.fracture
    assert cr.study_instance_uid != dx.study_instance_uid


@pytest.mark.parametrize("part", list(RadiographBodyPart))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fracture_centre_lies_on_the_broken_bone(
    part: RadiographBodyPart, seed: int
) -> None:
    broken = radiograph_pixels(seed, body_part=part, fracture=True, size=(512, 384))
    intact = radiograph_pixels(seed, body_part=part, size=(512, 384))
    truth = broken.fracture
    assert truth is not None
    r, c = truth.centre_row, truth.centre_col

    assert broken.label
    assert not intact.label
    assert broken.bone_labels[r, c] == truth.bone_index + 1
    # The fracture line is lucent: darker than the intact bone at the same place.
    line = broken.pixels[r - 1 : r + 2, c - 1 : c + 2].astype(float).mean()
    bone = intact.pixels[r - 1 : r + 2, c - 1 : c + 2].astype(float).mean()
    assert line < bone - 100


def test_radiograph_bone_is_brighter_than_the_soft_tissue_around_it() -> None:
    image = radiograph_pixels(8, body_part="LEG", size=(512, 384))
    rows = slice(200, 312)  # mid-shaft, inside the collimation
    bone = image.bone_labels[rows] > 0
    near = np.zeros_like(bone)
    near[:, 8:-8] = bone[:, 16:] | bone[:, :-16]  # 8 pixels to either side
    near &= ~bone

    pixels = image.pixels[rows].astype(float)
    assert pixels[bone].mean() > pixels[near].mean() + 200


def test_same_seed_gives_the_same_radiograph() -> None:
    a = radiograph_pixels(9, fracture=True, size=(128, 96))
    b = radiograph_pixels(9, fracture=True, size=(128, 96))

    assert np.array_equal(a.pixels, b.pixels)
    assert a.fracture == b.fracture


def test_command_writes_a_study_folder(tmp_path: Path) -> None:
    out = io.StringIO()
    call_command(
        "make_synthetic_study",
        "--out",
        str(tmp_path),
        "--seed=3",
        "--slices=2",
        "--size=64",
        stdout=out,
    )

    folder = tmp_path / "ct-head-seed3"
    assert sorted(p.name for p in folder.iterdir()) == [
        "CT_001_00001.dcm",
        "CT_001_00002.dcm",
    ]
    assert out.getvalue().strip() == f"wrote 2 files to {folder}"
