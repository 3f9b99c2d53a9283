"""Small DICOM instances for ingest tests, built in code (nothing downloaded)."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom.data
from pydicom.dataset import Dataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import generate_uid

from demo.synthetic import SyntheticStudy, make_ct_head_study

#: pydicom's own test files, as shipped inside the installed wheel.
PYDICOM_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


def ct_study(seed: int = 1, *, slices: int = 3, **options: object) -> SyntheticStudy:
    """A tiny synthetic CT head series (64 x 64 pixels)."""
    return make_ct_head_study(seed, slices=slices, size=64, **options)  # type: ignore[arg-type]


def encode(dataset: Dataset) -> bytes:
    """A dataset as a DICOM Part 10 stream (file meta included)."""
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def modified(dataset: Dataset, *remove: str, **attributes: object) -> bytes:
    """A copy of ``dataset`` without ``remove`` and with ``attributes``, encoded."""
    copy = pydicom.dcmread(io.BytesIO(encode(dataset)))
    for keyword in remove:
        delattr(copy, keyword)
    for keyword, value in attributes.items():
        setattr(copy, keyword, value)
    return encode(copy)


def new_uid() -> str:
    return str(generate_uid())


def pydicom_test_files() -> list[Path]:
    """Every file pydicom ships for its tests (some DICOM, some deliberately not)."""
    return sorted(p for p in PYDICOM_TEST_FILES.rglob("*") if p.is_file())


#: pydicom test files RadTriage must refuse, and the status it gives each.
#: Everything else in the folder is a valid storage instance and is stored.
PYDICOM_BROKEN: dict[str, int] = {
    # No file meta or no DICM prefix: not a Part 10 stream (or not DICOM at all).
    "ExplVR_BigEndNoMeta.dcm": 0xC000,
    "ExplVR_LitEndNoMeta.dcm": 0xC000,
    "no_meta.dcm": 0xC000,
    "rtstruct.dcm": 0xC000,
    "README.txt": 0xC000,
    "crayons.icc": 0xC000,
    "rtplan.dump": 0xC000,
    "rtstruct.dump": 0xC000,
    "test1.json": 0xC000,
    "test_PN.json": 0xC000,
    "zipMR.gz": 0xC000,
    "dicomdirtests/README.txt": 0xC000,
    "dicomdirtests/TINY_ALPHA/README": 0xC000,
    # Cut short.
    "MR_truncated.dcm": 0xC000,
    "rtplan_truncated.dcm": 0xC000,
    "SC_ybr_full_422_uncompressed.dcm": 0xC000,
    # Fragments and media directories without the identifiers of an instance.
    "JPEGLSNearLossless_08.dcm": 0xA900,
    "JPEGLSNearLossless_16.dcm": 0xA900,
    "SC_rgb_jls_lossy_line.dcm": 0xA900,
    "SC_rgb_jls_lossy_sample.dcm": 0xA900,
    "UN_sequence.dcm": 0xA900,
    "empty_charset_LEI.dcm": 0xA900,
    "meta_missing_tsyntax.dcm": 0xA900,
    "nested_priv_SQ.dcm": 0xA900,
    "no_meta_group_length.dcm": 0xA900,
    "priv_SQ.dcm": 0xA900,
    "dicomdirtests/DICOMDIR": 0xA900,
    "dicomdirtests/DICOMDIR-bigEnd": 0xA900,
    "dicomdirtests/DICOMDIR-empty.dcm": 0xA900,
    "dicomdirtests/DICOMDIR-implicit": 0xA900,
    "dicomdirtests/DICOMDIR-nooffset": 0xA900,
    "dicomdirtests/DICOMDIR-nopatient": 0xA900,
    "dicomdirtests/DICOMDIR-reordered": 0xA900,
    "dicomdirtests/TINY_ALPHA/DICOMDIR": 0xA900,
}


def pydicom_file_name(path: Path) -> str:
    return path.relative_to(PYDICOM_TEST_FILES).as_posix()
