"""Decoding, ordering, HU, windows, batching, aggregation and heatmaps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydicom.filewriter import dcmwrite
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from demo.synthetic import make_ct_head_study, make_radiograph_study
from inference import manifest as mf
from inference import preprocess as pp
from triage.ingest.header import read_header


def write(datasets: list[Any], folder: Path) -> list[pp.SliceRef]:
    folder.mkdir(parents=True, exist_ok=True)
    refs = []
    for i, ds in enumerate(datasets):
        path = folder / f"{i}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        refs.append(pp.SliceRef(100 + i, path))
    return refs


def test_slices_are_ordered_by_position_and_turned_into_hu(tmp_path: Path) -> None:
    study = make_ct_head_study(3, slices=6, size=64)
    shuffled = [study.datasets[i] for i in (4, 0, 5, 2, 1, 3)]
    volume = pp.read_series(write(shuffled, tmp_path), mf.PixelSpace.HU)
    assert volume.pixels.shape == (6, 1, 64, 64)
    assert volume.keys == (101, 104, 103, 105, 100, 102)
    expected = [str(ds.SOPInstanceUID) for ds in study.datasets]
    assert list(volume.sop_instance_uids) == expected
    raw = study.datasets[0].pixel_array.astype(np.float32)
    np.testing.assert_array_equal(volume.pixels[0, 0], raw - 1024)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_transfer_syntaxes_are_decoded(tmp_path: Path, syntax: str) -> None:
    study = make_ct_head_study(4, slices=2, size=64)
    datasets = []
    for ds in study.datasets:
        try:
            ds.compress(syntax)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"no encoder for {syntax} here: {exc}")
        datasets.append(ds)
    volume = pp.read_series(write(datasets, tmp_path), mf.PixelSpace.HU)
    original = make_ct_head_study(4, slices=2, size=64).datasets[1].pixel_array
    np.testing.assert_array_equal(volume.pixels[1, 0], original - 1024.0)


def test_monochrome1_is_inverted_for_presentation(tmp_path: Path) -> None:
    mono1 = make_radiograph_study(5, modality="CR", size=(64, 48))
    mono2 = make_radiograph_study(
        5, modality="CR", size=(64, 48), photometric="MONOCHROME2"
    )
    a = pp.read_series(
        write(list(mono1.datasets), tmp_path / "1"), mf.PixelSpace.PRESENTATION
    )
    b = pp.read_series(
        write(list(mono2.datasets), tmp_path / "2"), mf.PixelSpace.PRESENTATION
    )
    np.testing.assert_allclose(a.pixels, b.pixels)


def test_undecodable_pixels_are_a_typed_error(tmp_path: Path) -> None:
    study = make_ct_head_study(6, slices=2, size=64)
    refs = write(list(study.datasets), tmp_path)
    data = refs[1].path.read_bytes()
    refs[1].path.write_bytes(data[: len(data) - 3000])
    with pytest.raises(pp.UndecodablePixels):
        pp.read_series(refs, mf.PixelSpace.HU)
    refs[0].path.write_bytes(b"not dicom at all" * 20)
    with pytest.raises(pp.UndecodablePixels, match="cannot be read"):
        pp.read_series(refs, mf.PixelSpace.HU)


def recorded(refs: list[pp.SliceRef]) -> list[pp.SliceRef]:
    """The refs as scoring builds them from what ingest recorded."""
    out = []
    for ref in refs:
        header = read_header(ref.path.read_bytes())
        order = header.slice_position
        if order is None and header.instance_number is not None:
            order = float(header.instance_number)
        out.append(
            pp.SliceRef(
                ref.key, ref.path, header.pixel_layout, order, header.sop_instance_uid
            )
        )
    return out


@pytest.mark.parametrize("space", [mf.PixelSpace.HU, mf.PixelSpace.PRESENTATION])
def test_recorded_layouts_read_exactly_what_pydicom_decodes(
    tmp_path: Path, space: mf.PixelSpace
) -> None:
    ct = make_ct_head_study(3, slices=6, size=64)
    shuffled = [ct.datasets[i] for i in (4, 0, 5, 2, 1, 3)]
    # Radiographs: 12 bits stored in 16, MONOCHROME1, slope and intercept.
    xr = make_radiograph_study(5, modality="CR", size=(64, 48))
    for name, datasets in (("ct", shuffled), ("xr", list(xr.datasets))):
        refs = write(datasets, tmp_path / name)
        fast = recorded(refs)
        assert all(ref.layout is not None for ref in fast)
        decoded = pp.read_series(refs, space)
        laid_out = pp.read_series(fast, space)
        np.testing.assert_array_equal(laid_out.pixels, decoded.pixels)
        assert laid_out.keys == decoded.keys
        assert laid_out.sop_instance_uids == decoded.sop_instance_uids


def test_stored_bits_are_masked_or_sign_extended_like_pydicom() -> None:
    unsigned = np.array([0x0FFF, 0xF001, 0x0800], dtype="<u2")
    signed = np.array([0x0FFF, 0x0801, 0x7FF], dtype="<u2").view("<i2")
    np.testing.assert_array_equal(pp._stored_bits(unsigned, 12), [4095, 1, 2048])
    np.testing.assert_array_equal(pp._stored_bits(signed, 12), [-1, -2047, 2047])


def test_a_file_shorter_than_its_recorded_layout_is_undecodable(
    tmp_path: Path,
) -> None:
    refs = recorded(
        write(list(make_ct_head_study(6, slices=2, size=64).datasets), tmp_path)
    )
    data = refs[1].path.read_bytes()
    refs[1].path.write_bytes(data[:-100])
    with pytest.raises(pp.UndecodablePixels, match="image 2 is shorter"):
        pp.read_series(refs, mf.PixelSpace.HU)


def test_recorded_slices_of_different_sizes_are_undecodable(tmp_path: Path) -> None:
    small = write(
        list(make_ct_head_study(6, slices=1, size=64).datasets), tmp_path / "a"
    )
    large = write(
        list(make_ct_head_study(7, slices=1, size=96).datasets), tmp_path / "b"
    )
    with pytest.raises(pp.UndecodablePixels, match="the series is"):
        pp.read_series(recorded(small + large), mf.PixelSpace.HU)


def test_a_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        pp.read_series([pp.SliceRef(1, tmp_path / "gone.dcm")], mf.PixelSpace.HU)


def test_a_recorded_slice_missing_from_storage_is_a_storage_error(
    tmp_path: Path,
) -> None:
    refs = recorded(
        write(list(make_ct_head_study(6, slices=12, size=32).datasets), tmp_path)
    )
    refs[7].path.unlink()
    with pytest.raises(FileNotFoundError):
        pp.read_series(refs, mf.PixelSpace.HU)


def test_each_slice_is_worked_on_once_and_the_first_error_is_raised() -> None:
    seen: list[int] = []
    pp._each_slice(seen.append, 50)
    assert sorted(seen) == list(range(50))

    def fail_at_ten(index: int) -> None:
        if index == 10:
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        pp._each_slice(fail_at_ten, 50)


def test_volumes_reuse_their_buffers_between_blocks(tmp_path: Path) -> None:
    refs = recorded(
        write(list(make_ct_head_study(4, slices=5, size=32).datasets), tmp_path)
    )
    with pp.reused_volumes():
        first = pp.read_series(refs, mf.PixelSpace.HU)
        # A second volume in the same block gets its own buffer.
        beside = pp.read_series(refs, mf.PixelSpace.HU)
        assert not np.shares_memory(first.pixels, beside.pixels)
        expected = first.pixels.copy()
    with pp.reused_volumes():
        again = pp.read_series(refs, mf.PixelSpace.HU)
        assert np.shares_memory(again.pixels, first.pixels) or np.shares_memory(
            again.pixels, beside.pixels
        )
        np.testing.assert_array_equal(again.pixels, expected)
    # Outside a block every volume is its own.
    alone = pp.read_series(refs, mf.PixelSpace.HU)
    assert not np.shares_memory(alone.pixels, again.pixels)


def test_volume_buffers_kept_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = recorded(
        write(list(make_ct_head_study(4, slices=5, size=32).datasets), tmp_path)
    )
    monkeypatch.setattr(pp, "KEEP_VOLUME_BYTES", 5 * 32 * 32 * 4)
    with pp.reused_volumes():
        pp.read_series(refs, mf.PixelSpace.HU)
        pp.read_series(refs, mf.PixelSpace.HU)
    assert sum(b.nbytes for b in pp._buffers.free) <= pp.KEEP_VOLUME_BYTES
    monkeypatch.setattr(pp, "KEEP_VOLUME_BYTES", 0)
    with pp.reused_volumes():
        pp.read_series(refs, mf.PixelSpace.HU)
    assert pp._buffers.free == []


def test_chunks_carry_their_neighbours() -> None:
    assert list(pp.chunks(5, 64, 1)) == [pp.Chunk(0, 5, 0, 5)]
    assert list(pp.chunks(5, 2, 1)) == [
        pp.Chunk(0, 3, 0, 2),
        pp.Chunk(1, 5, 2, 4),
        pp.Chunk(3, 5, 4, 5),
    ]


def test_aggregation_picks_the_key_slice() -> None:
    probs = [0.1, 0.7, 0.9, 0.2]
    assert pp.aggregate(probs, mf.Aggregation.MAX, 1) == pp.StudyScore(0.9, 2)
    top2 = pp.aggregate(probs, mf.Aggregation.TOP_K_MEAN, 2)
    assert top2.probability == pytest.approx(0.8)
    assert top2.key_index == 2


def test_a_brain_window_picture_reads_back_as_hu() -> None:
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[:, :, :] = 255
    pixels = pp.gray8_to_pixels(rgb)
    assert pixels.shape == (1, 1, 20, 20)
    assert pixels[0, 0, 10, 10] == pytest.approx(80.0, abs=0.1)  # top of 40/80
    assert pixels[0, 0, 0, 0] == pytest.approx(0.0)  # the padding: bottom


def test_network_input_windows_and_stacks_neighbours() -> None:
    spec = mf.parse_manifest(
        {
            "id": "x1",
            "version": "1",
            "name": "x",
            "sha256": "0" * 64,
            "task": "per_slice",
            "findings": [
                {"code": "A", "display": "A", "severity": "urgent", "threshold": 0.5}
            ],
            "applicability": {"modalities": ["CT"]},
            "input": {
                "name": "x",
                "size": [8, 8],
                "pixel_space": "hu",
                "channels": [
                    {"name": "b", "window": {"center": 40, "width": 80}},
                    {
                        "name": "b-1",
                        "window": {"center": 40, "width": 80},
                        "slice_offset": -1,
                    },
                ],
            },
            "outputs": {"probabilities": "p"},
        }
    ).input
    pixels = np.stack([np.full((1, 16, 16), v, np.float32) for v in (0, 40, 80)])
    out = pp.network_input(pixels, spec)
    assert out.shape == (3, 2, 8, 8)
    np.testing.assert_allclose(out[:, 0, 0, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out[:, 1, 0, 0], [0.0, 0.0, 0.5])


def test_the_heatmap_overlay_is_a_jpeg_of_the_slice() -> None:
    image = np.full((256, 256), 40.0, np.float32)
    heat = np.zeros((16, 16), np.float32)
    heat[4, 12] = 1.0
    jpeg = pp.heatmap_overlay_jpeg(image, heat, mf.Window(40, 80))
    assert jpeg[:3] == b"\xff\xd8\xff"
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == (256, 256, 3)
    # Hot where the heatmap is, plain grey far from it.
    assert decoded[72, 200].tolist() != decoded[200, 40].tolist()
    # Mid-grey: 40 HU is the centre of the 40/80 window (127.5, rounded; JPEG
    # may move a flat area by a level).
    assert all(abs(v - 128) <= 1 for v in decoded[200, 40].tolist())
