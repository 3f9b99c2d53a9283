"""Where a stored file's uncompressed pixels are, recorded once at ingest.

Ingest already walks every header; noting there where the pixel values of a
plain little-endian greyscale image lie in the stored file, and how to turn them
into modality values, lets scoring read each slice with one positioned read
instead of parsing the file again (the parse costs more than the model on small
models). Anything else (compressed, big-endian, multi-frame, colour, packed
bits) has no layout and is decoded by pydicom as before.

Plain Python: no framework imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

#: The stored sample types a layout may name: little-endian 16-bit.
SAMPLE_TYPES: Final = frozenset({"<i2", "<u2"})

#: Transfer syntaxes whose pixel data is stored as is, little-endian.
PLAIN_LITTLE_ENDIAN: Final = frozenset({ExplicitVRLittleEndian, ImplicitVRLittleEndian})


class BadPixelLayout(ValueError):
    """A recorded layout that does not describe readable pixels."""


@dataclass(frozen=True, slots=True)
class PixelLayout:
    """Uncompressed greyscale pixels at a known place in a stored file.

    Attributes:
        offset: Byte offset of the first pixel value in the file.
        rows: Image rows.
        columns: Image columns.
        sample_type: numpy type string of one stored value ("<i2" or "<u2").
        slope: RescaleSlope (1 when absent).
        intercept: RescaleIntercept (0 when absent).
        monochrome1: PhotometricInterpretation is MONOCHROME1 (dark = dense).
        bits_stored: BitsStored.
    """

    offset: int
    rows: int
    columns: int
    sample_type: str
    slope: float
    intercept: float
    monochrome1: bool
    bits_stored: int

    def __post_init__(self) -> None:
        if self.sample_type not in SAMPLE_TYPES:
            raise BadPixelLayout(f"unknown sample type {self.sample_type!r}")
        if self.offset < 0 or self.rows <= 0 or self.columns <= 0:
            raise BadPixelLayout("offset and dimensions must be positive")
        if not 1 <= self.bits_stored <= 16:
            raise BadPixelLayout(f"bits stored out of range: {self.bits_stored}")

    def to_json(self) -> dict[str, Any]:
        """The layout as stored in a JSON column."""
        return {
            "offset": self.offset,
            "rows": self.rows,
            "columns": self.columns,
            "sample_type": self.sample_type,
            "slope": self.slope,
            "intercept": self.intercept,
            "monochrome1": self.monochrome1,
            "bits_stored": self.bits_stored,
        }

    @classmethod
    def from_json(cls, value: object) -> PixelLayout | None:
        """A stored layout back, None when none was recorded.

        Raises:
            BadPixelLayout: The value is not a layout.
        """
        if value is None:
            return None
        if not isinstance(value, dict):
            raise BadPixelLayout("a pixel layout must be an object")
        try:
            return cls(
                offset=int(value["offset"]),
                rows=int(value["rows"]),
                columns=int(value["columns"]),
                sample_type=str(value["sample_type"]),
                slope=float(value["slope"]),
                intercept=float(value["intercept"]),
                monochrome1=bool(value["monochrome1"]),
                bits_stored=int(value["bits_stored"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadPixelLayout(f"incomplete pixel layout: {exc}") from exc


def native_layout(
    *,
    little_endian_uncompressed: bool,
    pixel_offset: int | None,
    pixel_length: int | None,
    rows: int | None,
    columns: int | None,
    bits_allocated: int | None,
    bits_stored: int | None,
    high_bit: int | None,
    pixel_representation: int | None,
    samples_per_pixel: int | None,
    number_of_frames: int | None,
    photometric: str,
    slope: float | None,
    intercept: float | None,
) -> PixelLayout | None:
    """The layout of an image's pixels, or None when it needs a decoder.

    Only single-frame greyscale images in a little-endian uncompressed transfer
    syntax with 16 bits allocated get one, their stored bits starting at bit 0
    (HighBit = BitsStored - 1, as nearly always): the cases a positioned read
    reproduces bit for bit, masking or sign-extending the stored bits as
    pydicom does.
    """
    if (
        not little_endian_uncompressed
        or pixel_offset is None
        or rows is None
        or columns is None
        or rows <= 0
        or columns <= 0
        or bits_allocated != 16
        or bits_stored is None
        or not 1 <= bits_stored <= 16
        or high_bit != bits_stored - 1
        or pixel_representation not in (0, 1)
        or (samples_per_pixel or 1) != 1
        or (number_of_frames or 1) != 1
        or photometric not in ("MONOCHROME1", "MONOCHROME2")
    ):
        return None
    if pixel_length is None or pixel_length < rows * columns * 2:
        return None
    return PixelLayout(
        offset=pixel_offset,
        rows=rows,
        columns=columns,
        sample_type="<i2" if pixel_representation == 1 else "<u2",
        slope=slope if slope else 1.0,
        intercept=intercept or 0.0,
        monochrome1=photometric == "MONOCHROME1",
        bits_stored=bits_stored,
    )
