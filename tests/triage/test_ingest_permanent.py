"""Permanent problems with an instance are refused for good or normalised,
never answered "retry" (issue 13, defects 7 and 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import DataError
from django.utils import timezone

from tests.triage.dicom_data import ct_study, encode, modified
from triage import services
from triage.ingest import core, part10
from triage.ingest.errors import (
    IngestError,
    InvalidValue,
    MissingAttribute,
    UnrecordableInstance,
)
from triage.models import Instance, Patient, Study

pytestmark = pytest.mark.django_db


def store(data: bytes) -> services.StoreOutcome:
    return core.store_instance(data, now=timezone.now())


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def refusal(data: bytes) -> IngestError:
    with pytest.raises(IngestError) as raised:
        store(data)
    return raised.value


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("keyword", ["RescaleSlope", "RescaleIntercept"])
def test_a_rescale_that_is_not_a_finite_number_is_refused_for_good(
    keyword: str, value: str, storage_dir: Path
) -> None:
    error = refusal(modified(ct_study().datasets[0], **{keyword: value}))
    assert isinstance(error, InvalidValue)
    assert (error.status, error.transient) == (0xA900, False)
    assert str(error) == f"{keyword} is not a finite number"
    assert not Instance.objects.exists()
    assert files_under(storage_dir) == []


def test_nul_characters_in_text_are_dropped_not_recorded() -> None:
    dataset = ct_study().datasets[0]
    store(
        modified(
            dataset,
            PatientName="DOE^JO\x00HN",
            StudyDescription="CT\x00 HEAD",
            PatientID=dataset.PatientID + "\x00X",
        )
    )
    patient = Patient.objects.get()
    assert patient.patient_name == "DOE^JOHN"
    assert patient.patient_id == dataset.PatientID + "X"
    assert Study.objects.get().study_description == "CT HEAD"


def _with_instance_number(text: bytes) -> bytes:
    data = modified(ct_study().datasets[0], InstanceNumber="99999")
    assert data.count(b"99999 ") == 1
    return data.replace(b"99999 ", text.ljust(6), 1)


@pytest.mark.parametrize("text", [b"1e999", b"9e10", b"-9e10", b"nan"])
def test_a_number_no_column_can_hold_is_recorded_as_none(text: bytes) -> None:
    store(_with_instance_number(text))
    assert Instance.objects.get().instance_number is None


def test_a_value_the_database_refuses_is_a_permanent_failure(
    monkeypatch: pytest.MonkeyPatch, storage_dir: Path
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise DataError("value too long for type character varying(64)")

    monkeypatch.setattr(services, "record_instance", refuse)
    error = refusal(encode(ct_study().datasets[0]))
    assert isinstance(error, UnrecordableInstance)
    assert (error.status, error.transient) == (0xC000, False)
    assert "too long" not in str(error)  # the database's words may quote values
    assert files_under(storage_dir) == []


def test_an_empty_data_set_is_refused_as_missing_its_identifiers() -> None:
    dataset = ct_study().datasets[0]
    meta_only = part10.file_meta(
        sop_class_uid=dataset.SOPClassUID,
        sop_instance_uid=dataset.SOPInstanceUID,
        transfer_syntax_uid=dataset.file_meta.TransferSyntaxUID,
    )
    error = refusal(meta_only)
    assert isinstance(error, MissingAttribute)
    assert error.status == 0xA900
    assert str(error) == "the data set is empty"
    with pytest.raises(MissingAttribute):
        core.store_dataset(
            b"",
            sop_class_uid=dataset.SOPClassUID,
            sop_instance_uid=dataset.SOPInstanceUID,
            transfer_syntax_uid=dataset.file_meta.TransferSyntaxUID,
            now=timezone.now(),
        )
