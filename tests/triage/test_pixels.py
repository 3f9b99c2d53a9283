"""The pixel layout ingest records, so scoring can read pixels without parsing."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from django.utils import timezone
from pydicom.uid import ExplicitVRBigEndian, RLELossless

from demo.synthetic import make_radiograph_study
from tests.triage.dicom_data import ct_study, encode, modified
from triage.ingest import core
from triage.ingest.header import read_header
from triage.models import Instance
from triage.pixels import BadPixelLayout, PixelLayout, native_layout

PLAIN: dict[str, Any] = {
    "little_endian_uncompressed": True,
    "pixel_offset": 1000,
    "pixel_length": 8 * 4 * 2,
    "rows": 8,
    "columns": 4,
    "bits_allocated": 16,
    "bits_stored": 16,
    "high_bit": 15,
    "pixel_representation": 1,
    "samples_per_pixel": 1,
    "number_of_frames": None,
    "photometric": "MONOCHROME2",
    "slope": None,
    "intercept": -1024.0,
}


def test_a_plain_image_gets_a_layout_that_survives_json() -> None:
    layout = native_layout(**PLAIN)
    assert layout == PixelLayout(1000, 8, 4, "<i2", 1.0, -1024.0, False, 16)
    assert PixelLayout.from_json(layout.to_json()) == layout
    assert PixelLayout.from_json(None) is None


@pytest.mark.parametrize(
    "change",
    [
        {"little_endian_uncompressed": False},
        {"pixel_offset": None},
        {"bits_allocated": 8},
        {"bits_stored": 12, "high_bit": 15},  # stored bits not at bit 0
        {"samples_per_pixel": 3},
        {"number_of_frames": 2},
        {"photometric": "PALETTE COLOR"},
        {"pixel_length": 8 * 4 * 2 - 2},
        {"rows": None},
    ],
)
def test_anything_else_is_left_to_a_decoder(change: dict[str, Any]) -> None:
    assert native_layout(**(PLAIN | change)) is None


@pytest.mark.parametrize(
    "value",
    [
        "text",
        {"offset": 1, "rows": 2},
        {**PixelLayout(1, 2, 2, "<i2", 1.0, 0.0, False, 16).to_json(), "rows": -1},
        {
            **PixelLayout(1, 2, 2, "<i2", 1.0, 0.0, False, 16).to_json(),
            "sample_type": "f8",
        },
    ],
)
def test_a_broken_stored_layout_is_a_typed_error(value: object) -> None:
    with pytest.raises(BadPixelLayout):
        PixelLayout.from_json(value)


def read_with_layout(data: bytes, layout: PixelLayout) -> np.ndarray:
    values = np.frombuffer(
        data,
        dtype=layout.sample_type,
        count=layout.rows * layout.columns,
        offset=layout.offset,
    )
    return values.reshape(layout.rows, layout.columns)


def test_the_recorded_offset_points_at_the_pixels_pydicom_reads() -> None:
    for dataset in ct_study(slices=2).datasets:
        data = encode(dataset)
        layout = read_header(data).pixel_layout
        assert layout is not None
        assert layout.intercept == float(dataset.RescaleIntercept)
        expected = pydicom.dcmread(io.BytesIO(data)).pixel_array
        np.testing.assert_array_equal(read_with_layout(data, layout), expected)


def test_twelve_stored_bits_are_recorded_with_their_bit_count() -> None:
    # Synthetic radiographs store 12 bits in 16, MONOCHROME1.
    dataset = make_radiograph_study(3, modality="CR", size=(64, 48)).datasets[0]
    layout = read_header(encode(dataset)).pixel_layout
    assert layout is not None
    assert (layout.bits_stored, layout.monochrome1) == (12, True)


def test_compressed_or_big_endian_images_have_no_layout() -> None:
    dataset = ct_study(slices=1).datasets[0]
    big_endian = pydicom.dcmread(io.BytesIO(encode(dataset)))
    big_endian.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    assert read_header(encode(big_endian)).pixel_layout is None
    try:
        dataset.compress(RLELossless)
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no RLE encoder here: {exc}")
    assert read_header(encode(dataset)).pixel_layout is None


@pytest.mark.django_db
def test_ingest_records_the_layout_and_a_replacement_renews_it(
    storage_dir: Path,
) -> None:
    dataset = ct_study(slices=1).datasets[0]
    core.store_instance(encode(dataset), now=timezone.now())
    first = PixelLayout.from_json(Instance.objects.get().pixel_layout)
    assert first is not None

    # Other bytes for the same instance: a longer header moves the pixels.
    changed = modified(dataset, StudyDescription="CT HEAD " + "X" * 40)
    core.store_instance(changed, now=timezone.now())
    instance = Instance.objects.get()
    layout = PixelLayout.from_json(instance.pixel_layout)
    assert layout is not None
    assert layout.offset > first.offset
    stored = (storage_dir / instance.storage_path).read_bytes()
    np.testing.assert_array_equal(read_with_layout(stored, layout), dataset.pixel_array)
