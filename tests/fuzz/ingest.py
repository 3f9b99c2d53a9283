"""Malformed DICOM through the ingest core: a clean refusal or a stored
instance, never an unhandled exception, never a half-recorded row."""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path

import pydicom
from django.conf import settings
from django.utils import timezone
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from tests.triage.dicom_data import ct_study, encode
from triage.ingest.core import store_instance
from triage.ingest.errors import IngestError
from triage.models import Instance, Patient, Series, Study

_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
)
_CHARSETS = (
    "",
    "ISO_IR 100",
    "ISO_IR 192",
    "ISO 2022 IR 87",
    "\\ISO 2022 IR 87",
    "GB18030",
    "ISO_IR 6\\ISO_IR 999",
    "NOT A CHARSET",
)
_TEXT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyDescription",
    "SeriesDescription",
    "Modality",
    "BodyPartExamined",
    "Manufacturer",
    "PatientSex",
)
_NUMBER_KEYWORDS = (
    "InstanceNumber",
    "SeriesNumber",
    "RescaleSlope",
    "RescaleIntercept",
    "ImagePositionPatient",
    "ImageOrientationPatient",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
)


@cache
def _base(syntax: str) -> bytes:
    dataset = ct_study(7, slices=1).datasets[0]
    if syntax == RLELossless:
        dataset.compress(RLELossless)
    elif syntax != ExplicitVRLittleEndian:
        dataset.file_meta.TransferSyntaxUID = UID(syntax)
    return encode(dataset)


def _dataset(syntax: str) -> Dataset:
    return pydicom.dcmread(io.BytesIO(_base(syntax)))


_text = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80
) | st.sampled_from(["", "\x00", "A\x00B", "é" * 40, "^" * 400, "\\\\", "DOE^JOHN"])
_number = st.sampled_from(
    ["nan", "inf", "-inf", "1e999", "-1e999", "9" * 16, "-0", "1.5", "", " ", "x"]
) | st.text(st.sampled_from("0123456789+-.eE\\ "), max_size=24)


@st.composite
def _edited(draw: st.DrawFn) -> bytes:
    """A dataset whose attribute values are hostile, encoded by pydicom."""
    syntax = draw(st.sampled_from(_SYNTAXES))
    dataset = _dataset(syntax)
    charset = draw(st.sampled_from(_CHARSETS))
    if charset:
        dataset.SpecificCharacterSet = charset
    for keyword in draw(st.lists(st.sampled_from(_TEXT_KEYWORDS), max_size=4)):
        setattr(dataset, keyword, draw(_text))
    for keyword in draw(st.lists(st.sampled_from(_NUMBER_KEYWORDS), max_size=4)):
        # Raw bytes: pydicom would refuse to hold most of these as values.
        value = draw(_number).encode("ascii")
        tag = Tag(keyword)
        dataset[tag] = RawDataElement(
            tag,
            dictionary_VR(tag),
            len(value + b" " * (len(value) % 2)),
            value + b" " * (len(value) % 2),
            0,
            syntax == ImplicitVRLittleEndian,
            syntax != ExplicitVRBigEndian,
        )
    depth = draw(st.integers(0, 40))
    if depth:
        return _nested(dataset, draw(_text), depth) or _base(syntax)
    return _save(dataset) or _base(syntax)


def _nested(dataset: Dataset, text: str, depth: int) -> bytes | None:
    """``dataset`` with ``text`` ``depth`` sequences deep, encoded; None if
    pydicom refuses to write it.

    pydicom's writer re-raises an error once per enclosing element, each time
    quoting the whole traceback so far: the message grows ~2.6x a level (340 MB
    at 12, gigabytes past 13). So the value is tried one level deep first and
    nested only once it encodes.
    """
    _nest(dataset, text, 1)
    if _save(dataset) is None:
        return None
    _nest(dataset, text, depth)
    return _save(dataset)


def _nest(dataset: Dataset, text: str, depth: int) -> None:
    """A Content Sequence ``depth`` levels deep holding ``text`` at the bottom."""
    item = Dataset()
    item.CodeMeaning = text
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = Sequence([item])
        item = outer
    dataset.ContentSequence = item.ContentSequence


def _save(dataset: Dataset) -> bytes | None:
    """The encoded stream, or None if pydicom refuses to write it."""
    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=True)
    except MemoryError:
        raise  # a generator that exhausts memory is a failure, not a refusal
    except Exception:  # noqa: BLE001 - pydicom refused to write it: bytes instead
        return None
    return buffer.getvalue()


@st.composite
def _mangled(draw: st.DrawFn) -> bytes:
    """A valid stream's bytes broken: flips, cuts, inserts, lengths, VRs."""
    data = bytearray(
        draw(_edited())
        if draw(st.booleans())
        else _base(draw(st.sampled_from(_SYNTAXES)))
    )
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "length", "vr"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(max_size=32))
        elif kind == "length" and at + 4 <= len(data):
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            data[at : at + 4] = struct.pack("<I", value)
        elif kind == "vr" and at + 2 <= len(data):
            data[at : at + 2] = draw(st.sampled_from([b"SQ", b"UN", b"OB", b"ZZ"]))
    return bytes(data)


@st.composite
def _deflated(draw: st.DrawFn) -> bytes:
    """A deflated stream whose compressed bytes are damaged or made up."""
    data = _base(DeflatedExplicitVRLittleEndian)
    offset = draw(st.integers(330, len(data)))
    return data[:offset] + draw(st.binary(max_size=256))


def ingest_inputs() -> st.SearchStrategy[bytes]:
    """Streams for :func:`check_ingest`: edited, mangled, deflated or noise."""
    return st.one_of(_edited(), _mangled(), _deflated(), st.binary(max_size=512))


def _counts() -> tuple[int, int, int, int]:
    return (
        Patient.objects.count(),
        Study.objects.count(),
        Series.objects.count(),
        Instance.objects.count(),
    )


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def check_ingest(data: bytes) -> str:
    """Store ``data``; fail unless it is stored whole or refused with nothing kept.

    Returns:
        "stored" or the refusal's class name.
    """
    root: Path = settings.RADTRIAGE_STORAGE_DIR
    before, files_before = _counts(), _files(root)
    try:
        outcome = store_instance(data, now=timezone.now())
    except IngestError as exc:
        # Memory running out is a failure of ours, never the input refused.
        assert not isinstance(exc.__cause__, MemoryError), f"out of memory: {exc!r}"
        assert _counts() == before, "a refused instance left rows"
        assert _files(root) == files_before, "a refused instance left files"
        # The database and disk are up: a "retry" answer would loop for ever.
        assert not exc.transient, f"answered as retryable: {exc!r}"
        assert exc.status in (0xA900, 0xC000, 0xC001, 0xC122, 0x0122)
        return type(exc).__name__
    instance = Instance.objects.select_related("series__study").get(
        pk=outcome.instance_id
    )
    study = instance.series.study
    assert study.pk == outcome.study_id
    assert (
        study.instance_count == Instance.objects.filter(series__study=study).count()
    ), "the study's count disagrees with its instances"
    assert (root / instance.storage_path).is_file(), "a stored instance has no file"
    return "stored"
