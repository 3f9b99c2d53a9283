"""QIDO-RS study search (PS3.18 10.6): parameters in, DICOM JSON out.

Supported matching keys, by keyword or tag: PatientID and AccessionNumber
(single value, ``*`` and ``?`` wildcards), StudyDate (a date or a range
``YYYYMMDD-YYYYMMDD``, either end open), ModalitiesInStudy (one modality), and
StudyInstanceUID (list of UIDs). Plus ``limit``, ``offset``, and the
``includefield`` and ``fuzzymatching`` parameters, which are accepted and
ignored (every supported attribute is returned; matching is exact).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Count, Q, QuerySet

from triage.ingest.header import is_valid_uid
from triage.models import Study

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Past this no database holds the rows, and past 2**63 the offset would not
# even fit its column type: refused rather than sent to the database.
MAX_OFFSET = 10**9

_KEYS = {
    "PatientID": "PatientID",
    "00100020": "PatientID",
    "AccessionNumber": "AccessionNumber",
    "00080050": "AccessionNumber",
    "StudyDate": "StudyDate",
    "00080020": "StudyDate",
    "ModalitiesInStudy": "ModalitiesInStudy",
    "00080061": "ModalitiesInStudy",
    "StudyInstanceUID": "StudyInstanceUID",
    "0020000D": "StudyInstanceUID",
}
# "format" picks DRF's renderer (?format=json), before the search sees it.
_IGNORED = {"includefield", "fuzzymatching", "format"}
_DATE = re.compile(r"[0-9]{8}")
_COUNT = re.compile(r"[0-9]{1,10}")
# DICOM text values never hold control characters; PostgreSQL refuses a NUL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class QueryError(ValueError):
    """A search parameter RadTriage does not understand."""


@dataclass(frozen=True, slots=True)
class StudyQuery:
    """A parsed QIDO-RS study search.

    Attributes:
        patient_id: PatientID to match (wildcards allowed), or None.
        accession_number: AccessionNumber to match (wildcards allowed), or None.
        study_date_from: earliest StudyDate, inclusive, or None.
        study_date_to: latest StudyDate, inclusive, or None.
        modality: a modality the study must contain, or None.
        study_instance_uids: the studies to return, or empty for all.
        limit: at most this many results.
        offset: skip this many results first.
    """

    patient_id: str | None = None
    accession_number: str | None = None
    study_date_from: date | None = None
    study_date_to: date | None = None
    modality: str | None = None
    study_instance_uids: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @property
    def matching_keys(self) -> list[str]:
        """Which attributes the search matches on (for the audit trail)."""
        keys = {
            "PatientID": self.patient_id is not None,
            "AccessionNumber": self.accession_number is not None,
            "StudyDate": (self.study_date_from or self.study_date_to) is not None,
            "ModalitiesInStudy": self.modality is not None,
            "StudyInstanceUID": bool(self.study_instance_uids),
        }
        return [key for key, used in keys.items() if used]


def parse_query(params: Mapping[str, Sequence[str]]) -> StudyQuery:
    """Turn the request's query parameters into a :class:`StudyQuery`.

    Raises:
        QueryError: an unknown key or a malformed value.
    """
    values: dict[str, Any] = {}
    for name, given in params.items():
        if any(_CONTROL.search(item) for item in given):
            raise QueryError(f"{name} holds a control character")
        value = given[-1] if given else ""
        if name in ("limit", "offset"):
            values[name] = _count(name, value)
        elif name in _IGNORED:
            continue
        elif name in _KEYS:
            values.update(_matching(_KEYS[name], value, given))
        else:
            raise QueryError(f"unsupported search parameter: {name}")
    if values.get("limit", DEFAULT_LIMIT) > MAX_LIMIT:
        values["limit"] = MAX_LIMIT
    return StudyQuery(**values)


def _count(name: str, value: str) -> int:
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not _COUNT.fullmatch(value):
        raise QueryError(f"{name} must be a non-negative integer")
    count = int(value)
    if name == "offset" and count > MAX_OFFSET:
        raise QueryError(f"offset must be at most {MAX_OFFSET}")
    return count


def _matching(key: str, value: str, given: Sequence[str]) -> dict[str, Any]:
    if key == "StudyDate":
        start, end = _date_range(value)
        return {"study_date_from": start, "study_date_to": end}
    if key == "StudyInstanceUID":
        uids = tuple(
            uid.strip() for item in given for uid in item.split(",") if uid.strip()
        )
        if not uids or not all(is_valid_uid(uid) for uid in uids):
            raise QueryError("StudyInstanceUID must be a list of valid UIDs")
        return {"study_instance_uids": uids}
    if "\\" in value:
        raise QueryError(f"{key} takes a single value")
    if key == "ModalitiesInStudy":
        if not (value.isascii() and value.isalnum()):
            raise QueryError("ModalitiesInStudy must be one modality, like CT")
        return {"modality": value.upper()}
    field = {"PatientID": "patient_id", "AccessionNumber": "accession_number"}[key]
    return {field: value}


def _date_range(value: str) -> tuple[date | None, date | None]:
    start_text, dash, end_text = value.partition("-")
    if not dash:
        end_text = start_text
    if not (start_text or end_text):
        raise QueryError("StudyDate must be YYYYMMDD or YYYYMMDD-YYYYMMDD")
    start, end = _date(start_text), _date(end_text)
    if start and end and start > end:
        raise QueryError("StudyDate range ends before it starts")
    return start, end


def _date(text: str) -> date | None:
    if not text:
        return None
    if not _DATE.fullmatch(text):
        raise QueryError("StudyDate must be YYYYMMDD or YYYYMMDD-YYYYMMDD")
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise QueryError(f"not a date: {text}") from exc


def search(query: StudyQuery) -> list[Study]:
    """The studies matching ``query``, newest first, with patient and counts."""
    studies: QuerySet[Study] = Study.objects.select_related("patient").annotate(
        series_total=Count("series")
    )
    if query.patient_id is not None:
        studies = studies.filter(_text_match("patient__patient_id", query.patient_id))
    if query.accession_number is not None:
        studies = studies.filter(
            _text_match("accession_number", query.accession_number)
        )
    if query.study_date_from is not None:
        studies = studies.filter(study_date__gte=query.study_date_from)
    if query.study_date_to is not None:
        studies = studies.filter(study_date__lte=query.study_date_to)
    if query.modality is not None:
        # Stored backslash-separated, as on the wire: match a whole item.
        studies = studies.filter(
            modalities__regex=rf"(^|\\){re.escape(query.modality)}(\\|$)"
        )
    if query.study_instance_uids:
        studies = studies.filter(study_instance_uid__in=query.study_instance_uids)
    ordered = studies.order_by("-study_date", "-pk")
    return list(ordered[query.offset : query.offset + query.limit])


def _text_match(field: str, pattern: str) -> Q:
    """DICOM single-value matching, with ``*`` and ``?`` wildcards (PS3.4 C.2.2.2.4).

    An empty value or a lone ``*`` matches everything (universal matching).
    """
    if pattern in ("", "*"):
        return Q()
    if "*" not in pattern and "?" not in pattern:
        return Q(**{field: pattern})
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    return Q(**{f"{field}__regex": f"^{regex}$"})


def study_json(study: Study) -> dict[str, Any]:
    """One study as a QIDO-RS result, in the DICOM JSON model (PS3.18 F.2)."""
    patient = study.patient
    result: dict[str, Any] = {
        "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
        "00080020": _value("DA", _da(study.study_date)),
        "00080030": _value(
            "TM", study.study_time.strftime("%H%M%S") if study.study_time else ""
        ),
        "00080050": _value("SH", study.accession_number),
        "00080061": {"vr": "CS", "Value": study.modality_list}
        if study.modality_list
        else {"vr": "CS"},
        "00081030": _value("LO", study.study_description),
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": patient.patient_name}]}
        if patient.patient_name
        else {"vr": "PN"},
        "00100020": _value("LO", patient.patient_id),
        "00100030": _value("DA", _da(patient.patient_birth_date)),
        "00100040": _value("CS", patient.patient_sex),
        "0020000D": _value("UI", study.study_instance_uid),
        "00201206": {"vr": "IS", "Value": [getattr(study, "series_total", 0)]},
        "00201208": {"vr": "IS", "Value": [study.instance_count]},
    }
    return result


def _value(vr: str, value: str) -> dict[str, Any]:
    # PS3.18 F.2.5: an empty attribute has no "Value".
    return {"vr": vr, "Value": [value]} if value else {"vr": vr}


def _da(value: date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""
