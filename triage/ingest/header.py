"""Reading an instance's header into a typed value, checking it on the way.

A pydicom ``Dataset`` never leaves ``triage.ingest``: everything past this module
works with :class:`InstanceHeader`.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from datetime import date, time

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
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

from triage.ingest.errors import (
    InvalidUid,
    MissingAttribute,
    NotDicom,
    TruncatedInstance,
    UnsupportedSopClass,
    UnsupportedTransferSyntax,
)

# PS3.5 9.1: digits in dot-separated components, no leading zeros, at most 64.
_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
_UNDEFINED_LENGTH = 0xFFFFFFFF

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
    rows: int | None
    columns: int | None
    requested_procedure_priority: str


def is_valid_uid(value: str) -> bool:
    """Whether ``value`` follows the DICOM UID grammar (PS3.5 9.1)."""
    return len(value) <= 64 and _UID_PATTERN.fullmatch(value) is not None


def read_header(data: bytes) -> InstanceHeader:
    """Parse and check a DICOM Part 10 stream; pixel data is never decoded.

    Raises:
        IngestError: a subclass saying why the instance cannot be stored.
    """
    dataset = _read_dataset(data)
    transfer_syntax_uid = str(getattr(dataset.file_meta, "TransferSyntaxUID", ""))
    if not transfer_syntax_uid:
        raise MissingAttribute("the file meta has no Transfer Syntax UID")
    if transfer_syntax_uid not in SUPPORTED_TRANSFER_SYNTAXES:
        raise UnsupportedTransferSyntax(
            f"transfer syntax {transfer_syntax_uid} is not supported"
        )
    sop_class_uid = _uid(dataset, "SOPClassUID")
    if sop_class_uid not in STORAGE_SOP_CLASSES:
        raise UnsupportedSopClass(f"SOP class {sop_class_uid} is not a storage class")
    _check_complete(dataset)
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
        series_number=_int(dataset, "SeriesNumber"),
        series_description=_text(dataset, "SeriesDescription", 256),
        manufacturer=_text(dataset, "Manufacturer", 128),
        manufacturer_model_name=_text(dataset, "ManufacturerModelName", 128),
        instance_number=_int(dataset, "InstanceNumber"),
        slice_position=_slice_position(dataset),
        rows=_int(dataset, "Rows"),
        columns=_int(dataset, "Columns"),
        requested_procedure_priority=_text(
            dataset, "RequestedProcedurePriority", 16
        ).upper(),
    )


def _read_dataset(data: bytes) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
        except InvalidDicomError as exc:
            raise NotDicom("not a DICOM Part 10 stream (no DICM prefix)") from exc
        except Exception as exc:
            raise NotDicom(f"unreadable DICOM stream ({type(exc).__name__})") from exc
    if any("End of file reached" in str(w.message) for w in caught):
        raise TruncatedInstance("the stream ends inside an element")
    return dataset


def _check_complete(dataset: Dataset) -> None:
    # pydicom quietly keeps a short last value; compare each declared length.
    for element in dataset.elements():
        if (
            isinstance(element, RawDataElement)
            and element.length != _UNDEFINED_LENGTH
            and element.value is not None
            and len(element.value) < element.length
        ):
            raise TruncatedInstance("the stream ends inside an element")
    if "Rows" in dataset and not any(k in dataset for k in _PIXEL_KEYWORDS):
        raise TruncatedInstance("an image without pixel data (truncated stream?)")
    if "PixelData" in dataset and not dataset.file_meta.TransferSyntaxUID.is_compressed:
        expected = _native_pixel_bytes(dataset)
        if expected is not None and len(dataset.PixelData) < expected:
            raise TruncatedInstance("pixel data is shorter than its dimensions say")


def _native_pixel_bytes(dataset: Dataset) -> int | None:
    try:
        bits = int(dataset.BitsAllocated)
        pixels = (
            int(dataset.Rows)
            * int(dataset.Columns)
            * int(dataset.get("SamplesPerPixel", 1))
            * int(dataset.get("NumberOfFrames", 1) or 1)
        )
    except (AttributeError, TypeError, ValueError):
        return None
    return (pixels * bits + 7) // 8


def _uid(dataset: Dataset, keyword: str) -> str:
    value = str(dataset.get(keyword, "") or "").strip().rstrip("\x00")
    if not value:
        raise MissingAttribute(f"{keyword} is missing or empty")
    if not is_valid_uid(value):
        raise InvalidUid(f"{keyword} is not a valid DICOM UID")
    return value


def _text(dataset: Dataset, keyword: str, limit: int) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    return str(value).strip()[:limit]


def _int(dataset: Dataset, keyword: str) -> int | None:
    try:
        value = dataset.get(keyword)
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _date(dataset: Dataset, keyword: str) -> date | None:
    raw = str(dataset.get(keyword, "") or "").strip()
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        return None


def _time(dataset: Dataset, keyword: str) -> time | None:
    raw = str(dataset.get(keyword, "") or "").strip().split(".")[0].replace(":", "")
    if len(raw) < 2 or not raw.isdigit():
        return None
    raw = raw.ljust(6, "0")[:6]
    try:
        return time(int(raw[:2]), int(raw[2:4]), int(raw[4:6]))
    except ValueError:
        return None


def _slice_position(dataset: Dataset) -> float | None:
    """Distance along the slice normal in mm, from ImagePositionPatient."""
    try:
        position = [float(v) for v in dataset.ImagePositionPatient]
        orientation = [float(v) for v in dataset.ImageOrientationPatient]
    except (AttributeError, TypeError, ValueError):
        return None
    if len(position) != 3 or len(orientation) != 6:
        return None
    row, col = orientation[:3], orientation[3:]
    normal = (
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    )
    return sum(p * n for p, n in zip(position, normal, strict=True))
