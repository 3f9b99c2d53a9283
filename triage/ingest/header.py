"""Reading an instance's header into a typed value, checking it on the way.

A pydicom ``Dataset`` never leaves ``triage.ingest``: everything past this module
works with :class:`InstanceHeader`.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import zlib
from dataclasses import dataclass
from datetime import date, time
from typing import cast

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import data_element_generator
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts

from triage.geometry import plane, slice_normal
from triage.ingest.errors import (
    InstanceTooLarge,
    InvalidUid,
    InvalidValue,
    MissingAttribute,
    NotDicom,
    TruncatedInstance,
    UnsupportedSopClass,
    UnsupportedTransferSyntax,
)
from triage.ingest.part10 import dataset_offset, meta_transfer_syntax
from triage.pixels import PLAIN_LITTLE_ENDIAN, PixelLayout, native_layout

# PS3.5 9.1: digits in dot-separated components, no leading zeros, at most 64.
_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UNDEFINED_LENGTH = 0xFFFFFFFF
# Integer columns are 32-bit signed; a count or number outside is no value.
_INT_RANGE = range(-(2**31), 2**31)

STORAGE_SOP_CLASSES: frozenset[str] = frozenset(
    str(context.abstract_syntax) for context in AllStoragePresentationContexts
)
# What the preprocessing can decode: uncompressed, deflated and the compressed
# syntaxes that pylibjpeg, pyjpegls and openjpeg handle (HTJ2K included).
SUPPORTED_TRANSFER_SYNTAXES: frozenset[str] = frozenset(
    [
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
        RLELossless,
        *JPEGTransferSyntaxes,
        *JPEGLSTransferSyntaxes,
        *JPEG2000TransferSyntaxes,
    ]
)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_READ_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "Modality",
    "BodyPartExamined",
    "StudyDescription",
    "StudyDate",
    "StudyTime",
    "SeriesNumber",
    "SeriesDescription",
    "Manufacturer",
    "ManufacturerModelName",
    "InstanceNumber",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "RescaleSlope",
    "RescaleIntercept",
    "SamplesPerPixel",
    "NumberOfFrames",
    "RequestedProcedurePriority",
    *_PIXEL_KEYWORDS,
)
_TAGS: dict[str, BaseTag] = {k: Tag(k) for k in _READ_KEYWORDS}
_VR_OF: dict[str, str] = {k: dictionary_VR(_TAGS[k]) for k in _READ_KEYWORDS}
_ROWS = _TAGS["Rows"]
_PIXEL_DATA = _TAGS["PixelData"]
_PIXEL_TAGS = tuple(_TAGS[k] for k in _PIXEL_KEYWORDS)


@dataclass(frozen=True, slots=True)
class InstanceHeader:
    """What RadTriage records of one instance, read from its header."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str
    patient_birth_date: date | None
    patient_sex: str
    accession_number: str
    modality: str
    body_part_examined: str
    study_description: str
    study_date: date | None
    study_time: time | None
    series_number: int | None
    series_description: str
    manufacturer: str
    manufacturer_model_name: str
    instance_number: int | None
    slice_position: float | None
    # triage.geometry.AXIAL, OTHER or UNKNOWN.
    plane: str
    rows: int | None
    columns: int | None
    requested_procedure_priority: str
    pixel_layout: PixelLayout | None = None


def is_valid_uid(value: str) -> bool:
    """Whether ``value`` follows the DICOM UID grammar (PS3.5 9.1)."""
    return len(value) <= 64 and _UID_PATTERN.fullmatch(value) is not None


def read_header(
    data: bytes, *, max_inflated_bytes: int | None = None
) -> InstanceHeader:
    """Parse and check a DICOM Part 10 stream; pixel data is never decoded.

    Args:
        data: the stream, file meta included.
        max_inflated_bytes: a deflated data set inflating past this many bytes
            is refused, found out by inflating it piece by piece (never more
            than a piece held) before pydicom inflates it whole.

    Raises:
        IngestError: a subclass saying why the instance cannot be stored.
    """
    if (
        max_inflated_bytes is not None
        and meta_transfer_syntax(data) == DeflatedExplicitVRLittleEndian
    ):
        _check_inflated_size(
            memoryview(data)[dataset_offset(data) :], max_inflated_bytes
        )
    dataset = _read_dataset(data)
    transfer_syntax_uid = str(getattr(dataset.file_meta, "TransferSyntaxUID", ""))
    if not transfer_syntax_uid:
        raise MissingAttribute("the file meta has no Transfer Syntax UID")
    if transfer_syntax_uid not in SUPPORTED_TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntax(
            f"transfer syntax {transfer_syntax_uid} is not supported"
        )
    _check_complete(dataset)
    try:
        return _header(dataset, transfer_syntax_uid)
    except MissingAttribute as exc:
        # A stream cut short lacks attributes too: say what really happened.
        if _is_cut_short(data, dataset):
            raise TruncatedInstance("the stream ends inside an element") from exc
        raise


def _header(dataset: Dataset, transfer_syntax_uid: str) -> InstanceHeader:
    sop_class_uid = _uid(dataset, "SOPClassUID")
    if sop_class_uid not in STORAGE_SOP_CLASSES:
        raise UnsupportedSopClass(f"SOP class {sop_class_uid} is not a storage class")
    orientation = _numbers(dataset, "ImageOrientationPatient")
    return InstanceHeader(
        sop_class_uid=sop_class_uid,
        sop_instance_uid=_uid(dataset, "SOPInstanceUID"),
        transfer_syntax_uid=transfer_syntax_uid,
        study_instance_uid=_uid(dataset, "StudyInstanceUID"),
        series_instance_uid=_uid(dataset, "SeriesInstanceUID"),
        patient_id=_text(dataset, "PatientID", 64),
        issuer_of_patient_id=_text(dataset, "IssuerOfPatientID", 64),
        patient_name=_text(dataset, "PatientName", 324),
        patient_birth_date=_date(dataset, "PatientBirthDate"),
        patient_sex=_text(dataset, "PatientSex", 16),
        accession_number=_text(dataset, "AccessionNumber", 64),
        modality=_text(dataset, "Modality", 16).upper(),
        body_part_examined=_text(dataset, "BodyPartExamined", 64).upper(),
        study_description=_text(dataset, "StudyDescription", 256),
        study_date=_date(dataset, "StudyDate"),
        study_time=_time(dataset, "StudyTime"),
        series_number=_in_range(_int(dataset, "SeriesNumber")),
        series_description=_text(dataset, "SeriesDescription", 256),
        manufacturer=_text(dataset, "Manufacturer", 128),
        manufacturer_model_name=_text(dataset, "ManufacturerModelName", 128),
        instance_number=_in_range(_int(dataset, "InstanceNumber")),
        slice_position=_slice_position(dataset, orientation),
        plane=plane(orientation),
        rows=_count(dataset, "Rows"),
        columns=_count(dataset, "Columns"),
        requested_procedure_priority=_text(
            dataset, "RequestedProcedurePriority", 16
        ).upper(),
        pixel_layout=_pixel_layout(dataset, transfer_syntax_uid),
    )


def _pixel_layout(dataset: Dataset, transfer_syntax_uid: str) -> PixelLayout | None:
    """Where the pixel values lie in the stream, for scoring to read them directly.

    The offset is the raw element's position in the Part 10 stream, which is the
    stored file byte for byte.
    """
    element = _element(dataset, _PIXEL_DATA)
    raw = element if isinstance(element, RawDataElement) else None
    slope = _rescale(dataset, "RescaleSlope")
    intercept = _rescale(dataset, "RescaleIntercept")
    return native_layout(
        little_endian_uncompressed=transfer_syntax_uid in PLAIN_LITTLE_ENDIAN,
        pixel_offset=raw.value_tell if raw is not None else None,
        pixel_length=raw.length if raw is not None else None,
        rows=_int(dataset, "Rows"),
        columns=_int(dataset, "Columns"),
        bits_allocated=_int(dataset, "BitsAllocated"),
        bits_stored=_int(dataset, "BitsStored"),
        high_bit=_int(dataset, "HighBit"),
        pixel_representation=_int(dataset, "PixelRepresentation"),
        samples_per_pixel=_int(dataset, "SamplesPerPixel"),
        number_of_frames=_int(dataset, "NumberOfFrames"),
        photometric=_string(dataset, "PhotometricInterpretation").upper(),
        slope=slope,
        intercept=intercept,
    )


_INFLATE_PIECE_BYTES = 1 << 20
_DEFLATED_PIECE_BYTES = 1 << 16


def _check_inflated_size(deflated: memoryview, limit: int) -> None:
    """Refuse a deflated data set (PS3.5 A.5) whose inflated size passes ``limit``.

    Inflated output is counted and dropped a megabyte at a time: a few hundred
    kilobytes of deflated zeros can stand for gigabytes.
    """
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    size = 0
    try:
        # Fed a little at a time: each call copies its unconsumed input.
        for start in range(0, len(deflated), _DEFLATED_PIECE_BYTES):
            pending: bytes | memoryview = deflated[
                start : start + _DEFLATED_PIECE_BYTES
            ]
            while pending and not inflater.eof:
                size += len(inflater.decompress(pending, _INFLATE_PIECE_BYTES))
                if size > limit:
                    raise InstanceTooLarge(
                        f"the deflated data set inflates past {limit} bytes"
                    )
                pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        size += len(inflater.flush())
    except zlib.error as exc:
        raise NotDicom("the deflated data set does not inflate") from exc
    if size > limit:
        raise InstanceTooLarge(f"the deflated data set inflates past {limit} bytes")


def _read_dataset(data: bytes) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError as exc:
            raise NotDicom("not a DICOM Part 10 stream (no DICM prefix)") from exc
        except MemoryError:
            raise  # the server's shortage, not the stream's fault: never NotDicom
        except Exception as exc:
            raise NotDicom(f"unreadable DICOM stream ({type(exc).__name__})") from exc
    if any("End of file reached" in str(w.message) for w in caught):
        raise TruncatedInstance("the stream ends inside an element")
    return dataset


def _check_complete(dataset: Dataset) -> None:
    # pydicom quietly keeps a short last value. A stream cut short ends inside
    # its last element (the highest tag), so that is the one to measure.
    # key=int: compared in C, not by pydicom's Tag.__gt__ (dozens per instance).
    if not dataset:
        # A STOW part of file meta only, or a C-STORE with nothing in it.
        raise MissingAttribute("the data set is empty")
    last = _element(dataset, max(dataset.keys(), key=int))
    if (
        isinstance(last, RawDataElement)
        and last.length != _UNDEFINED_LENGTH
        and last.value is not None
        and len(last.value) < last.length
    ):
        raise TruncatedInstance("the stream ends inside an element")
    if _ROWS in dataset and not any(tag in dataset for tag in _PIXEL_TAGS):
        raise TruncatedInstance("an image without pixel data (truncated stream?)")
    if _PIXEL_DATA in dataset and not dataset.file_meta.TransferSyntaxUID.is_compressed:
        expected = _native_pixel_bytes(dataset)
        pixel_data = _element(dataset, _PIXEL_DATA)
        size = len(pixel_data.value or b"") if pixel_data is not None else 0
        if expected is not None and size < expected:
            raise TruncatedInstance("pixel data is shorter than its dimensions say")


def _is_cut_short(data: bytes, dataset: Dataset) -> bool:
    """Whether a top-level element claims more bytes than the stream holds.

    pydicom converts some elements while reading (the character set), which
    hides their declared length from :func:`_check_complete`; this walks the
    raw elements again. Only used once an attribute turned out missing.
    """
    syntax = dataset.file_meta.TransferSyntaxUID
    if syntax == DeflatedExplicitVRLittleEndian:
        return False
    stream = io.BytesIO(data)
    stream.seek(dataset_offset(data))
    try:
        for element in data_element_generator(
            stream, syntax.is_implicit_VR, syntax.is_little_endian
        ):
            if (
                isinstance(element, RawDataElement)
                and element.length != _UNDEFINED_LENGTH
                and len(element.value or b"") < element.length
            ):
                return True
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - unreadable here means cut short
        return True
    return False


def _native_pixel_bytes(dataset: Dataset) -> int | None:
    bits = _int(dataset, "BitsAllocated")
    rows, columns = _int(dataset, "Rows"), _int(dataset, "Columns")
    if bits is None or rows is None or columns is None:
        return None
    samples = _int(dataset, "SamplesPerPixel") or 1
    frames = _int(dataset, "NumberOfFrames") or 1
    return (rows * columns * samples * frames * bits + 7) // 8


def _element(dataset: Dataset, tag: BaseTag) -> DataElement | RawDataElement | None:
    """The element as read, before any conversion (pydicom's typing says only
    ``DataElement``, but ``get_item`` returns the raw one until it is used).

    keep_deferred: an empty value reads as None, which get_item would convert
    here, and an unknown VR (the fuzzer's "ZZ") would raise NotImplementedError.
    """
    return cast(
        "DataElement | RawDataElement | None",
        dataset.get_item(tag, keep_deferred=True),
    )


def _string(dataset: Dataset, keyword: str) -> str:
    """An attribute's value as text ("" when absent), multiple values joined by \\.

    Read from the raw bytes when they are plain ASCII, which is nearly always
    and many times cheaper than pydicom's conversion; otherwise pydicom decodes
    them with the data set's character set.
    """
    element = _element(dataset, _TAGS[keyword])
    if element is None:
        return ""
    if isinstance(element, RawDataElement):
        raw = element.value
        if raw is None:
            return ""
        if raw.isascii():
            text = raw.decode("ascii").strip(" \x00")
            return text.replace("\x00", "") if "\x00" in text else text
    value = dataset[_TAGS[keyword]].value
    if value is None:
        return ""
    if isinstance(value, MultiValue):
        return _clean("\\".join(str(v) for v in value))
    return _clean(str(value))


def _clean(text: str) -> str:
    """Text the database can hold: no NUL (PostgreSQL refuses it), valid UTF-8.

    A NUL is padding at best, never part of a value; a lone surrogate (bytes
    the character set could not decode) becomes "?".
    """
    text = text.replace("\x00", "")
    if not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text.strip(" ")


def _uid(dataset: Dataset, keyword: str) -> str:
    value = _string(dataset, keyword)
    if not value:
        raise MissingAttribute(f"{keyword} is missing or empty")
    if not is_valid_uid(value):
        raise InvalidUid(f"{keyword} is not a valid DICOM UID")
    return value


def _text(dataset: Dataset, keyword: str, limit: int) -> str:
    return _string(dataset, keyword)[:limit]


def _int(dataset: Dataset, keyword: str) -> int | None:
    element = _element(dataset, _TAGS[keyword])
    if element is None:
        return None
    try:
        if _VR_OF[keyword] == "US":
            if (
                isinstance(element, RawDataElement)
                and isinstance(element.value, bytes)
                and len(element.value) == 2
            ):
                # One value as read: many times cheaper than pydicom's conversion.
                if element.is_little_endian:
                    return int.from_bytes(element.value, "little")
                return int.from_bytes(element.value, "big")
            # Binary, several values or converted already: pydicom minds those.
            value = dataset[_TAGS[keyword]].value
            return None if value in (None, "") else int(value)
        text = _string(dataset, keyword).split("\\")[0].strip()
        return int(float(text)) if text else None
    except (TypeError, ValueError, OverflowError):  # OverflowError: "1e999"
        return None


def _in_range(value: int | None) -> int | None:
    return value if value is not None and value in _INT_RANGE else None


def _count(dataset: Dataset, keyword: str) -> int | None:
    value = _in_range(_int(dataset, keyword))
    return value if value is not None and value >= 0 else None


def _rescale(dataset: Dataset, keyword: str) -> float | None:
    """The first value of RescaleSlope or RescaleIntercept; refused if not finite.

    Pixel values turn into Hounsfield units through these two: with a NaN or
    an infinity no value of the image means anything, and storing it again
    will not change that.
    """
    values = _numbers(dataset, keyword, finite=False)
    if not values:
        return None
    if not math.isfinite(values[0]):
        raise InvalidValue(f"{keyword} is not a finite number")
    return values[0]


def _date(dataset: Dataset, keyword: str) -> date | None:
    raw = _string(dataset, keyword)
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        return None


def _time(dataset: Dataset, keyword: str) -> time | None:
    raw = _string(dataset, keyword).split(".")[0].replace(":", "")
    if len(raw) < 2 or not raw.isdigit():
        return None
    raw = raw.ljust(6, "0")[:6]
    try:
        return time(int(raw[:2]), int(raw[2:4]), int(raw[4:6]))
    except ValueError:
        return None


def _numbers(
    dataset: Dataset, keyword: str, *, finite: bool = True
) -> list[float] | None:
    """The attribute's numbers; None when absent, unreadable or (``finite``) not
    all finite."""
    try:
        values = [float(v) for v in _string(dataset, keyword).split("\\")]
    except ValueError:
        return None
    if finite and not all(math.isfinite(v) for v in values):
        return None
    return values


def _slice_position(dataset: Dataset, orientation: list[float] | None) -> float | None:
    """Distance along the slice normal in mm, from ImagePositionPatient."""
    position = _numbers(dataset, "ImagePositionPatient")
    normal = slice_normal(orientation)
    if position is None or normal is None or len(position) != 3:
        return None
    distance = sum(p * n for p, n in zip(position, normal, strict=True))
    return distance if math.isfinite(distance) else None
