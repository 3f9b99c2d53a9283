"""Memory running out while reading an instance is the server's shortage: the
sender is told to retry (0xA700, 503), never that its instance is not DICOM."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from tests.triage.dicom_data import ct_study, encode
from tests.triage.test_dicomweb import failures, multipart, stow
from triage import services
from triage.ingest import core, header, part10
from triage.ingest.errors import OutOfMemory
from triage.models import Instance, Patient

pytestmark = pytest.mark.django_db


@pytest.fixture
def exhausted(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydicom runs out of memory reading any stream."""

    def dcmread(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(pydicom, "dcmread", dcmread)


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.usefixtures("exhausted")
def test_an_instance_read_out_of_memory_is_answered_retry_with_nothing_kept(
    storage_dir: Path,
) -> None:
    with pytest.raises(OutOfMemory) as raised:
        core.store_instance(encode(ct_study().datasets[0]), now=timezone.now())
    assert (raised.value.status, raised.value.transient) == (0xA700, True)
    assert isinstance(raised.value.__cause__, MemoryError)
    assert not Instance.objects.exists() and not Patient.objects.exists()
    assert files_under(storage_dir) == []


@pytest.mark.usefixtures("exhausted")
def test_a_c_store_read_out_of_memory_is_answered_out_of_resources() -> None:
    dataset = ct_study().datasets[0]
    data = encode(dataset)
    with pytest.raises(OutOfMemory):
        core.store_dataset(
            data[part10.dataset_offset(data) :],
            sop_class_uid=str(dataset.SOPClassUID),
            sop_instance_uid=str(dataset.SOPInstanceUID),
            transfer_syntax_uid=str(dataset.file_meta.TransferSyntaxUID),
            now=timezone.now(),
        )


@pytest.mark.usefixtures("exhausted")
def test_a_stow_part_read_out_of_memory_is_answered_503() -> None:
    client = APIClient()
    token = services.set_integration_user("pacs")
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = stow(client, multipart(encode(ct_study().datasets[0])))
    assert response.status_code == 503
    assert failures(response) == [0xA700]


def test_the_cut_short_walk_lets_memory_running_out_through(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = encode(ct_study().datasets[0])
    dataset = pydicom.dcmread(io.BytesIO(data))

    def generator(*args: Any, **kwargs: Any) -> None:
        raise MemoryError

    monkeypatch.setattr(header, "data_element_generator", generator)
    with pytest.raises(MemoryError):
        header._is_cut_short(data, dataset)
