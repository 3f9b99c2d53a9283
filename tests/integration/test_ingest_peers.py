"""Real senders into the real listener and web processes, on PostgreSQL.

dcmtk's echoscu, storescu and dcmsend; Orthanc forwarding a study; and
dicomweb-client storing by STOW-RS and searching by QIDO-RS.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from demo.synthetic import SyntheticStudy, write_study
from tests.harness.dicomweb import stow_body
from tests.harness.processes import ManagedProcess, free_port
from tests.integration.dicom_peers import (
    DCMTK_ENV,
    Listener,
    Orthanc,
    files_under,
    query,
    require_program,
    run_dcmtk,
    stored_sop_instance_uids,
)
from tests.triage.dicom_data import (
    PYDICOM_BROKEN,
    ct_study,
    pydicom_file_name,
    pydicom_test_files,
)
from triage.pixels import PixelLayout

pytest_plugins = ["tests.integration.dicom_peers"]


@pytest.fixture
def study_files(tmp_path: Path) -> tuple[SyntheticStudy, list[Path]]:
    study = ct_study(7, slices=12)
    return study, write_study(study, tmp_path / "study")


def test_echoscu_reaches_the_listener(listener: Listener) -> None:
    echoscu = require_program("echoscu", "dcmtk")
    result = run_dcmtk(
        [
            echoscu,
            "-aet",
            "ECHOTEST",
            "-aec",
            "RADTRIAGE",
            "127.0.0.1",
            str(listener.port),
        ]
    )
    assert result.returncode == 0, result.stderr


def test_storescu_stores_a_study_twice_without_duplicates(
    listener: Listener,
    database_url: str,
    study_files: tuple[SyntheticStudy, list[Path]],
) -> None:
    storescu = require_program("storescu", "dcmtk")
    study, paths = study_files
    command = [storescu, "-aec", "RADTRIAGE", "127.0.0.1", str(listener.port)]
    for _ in range(2):
        result = run_dcmtk([*command, *map(str, paths)])
        assert result.returncode == 0, result.stderr

    assert stored_sop_instance_uids(database_url) == {
        ds.SOPInstanceUID for ds in study.datasets
    }
    [(count,)] = query(database_url, "SELECT instance_count FROM triage_study")
    assert count == len(paths)
    # As received: byte for byte the data set that was sent.
    for path in paths:
        sent = pydicom.dcmread(path)
        kept = pydicom.dcmread(
            next(
                p
                for p in files_under(listener.storage_dir)
                if p.name.startswith(f"{sent.SOPInstanceUID}.")
            )
        )
        assert kept.PixelData == sent.PixelData
    # Both ingest paths on PostgreSQL (the first instance of a series and the
    # one-statement rest) record where each file's pixels are, for scoring.
    layouts = query(
        database_url, "SELECT storage_path, pixel_layout, plane FROM triage_instance"
    )
    assert len(layouts) == len(paths)
    for storage_path, stored, plane in layouts:
        assert plane == "axial"
        layout = PixelLayout.from_json(stored)
        assert layout is not None
        path = listener.storage_dir / str(storage_path)
        values = np.fromfile(
            path,
            dtype=layout.sample_type,
            count=layout.rows * layout.columns,
            offset=layout.offset,
        )
        np.testing.assert_array_equal(
            values.reshape(layout.rows, layout.columns),
            pydicom.dcmread(path).pixel_array,
        )
    assert "Traceback" not in listener.process.log_text()


def test_instances_without_number_or_position_are_recorded_with_nulls(
    listener: Listener, database_url: str, tmp_path: Path
) -> None:
    # The one-statement path on PostgreSQL types its NULL parameters too.
    storescu = require_program("storescu", "dcmtk")
    paths = write_study(ct_study(9, slices=4), tmp_path / "bare")
    for path in paths:
        ds = pydicom.dcmread(path)
        for keyword in (
            "InstanceNumber",
            "ImagePositionPatient",
            "ImageOrientationPatient",
        ):
            delattr(ds, keyword)
        ds.save_as(path)
    result = run_dcmtk(
        [storescu, "-aec", "RADTRIAGE", "127.0.0.1", str(listener.port)]
        + [str(p) for p in paths]
    )
    assert result.returncode == 0, result.stderr
    rows = query(
        database_url,
        "SELECT instance_number, slice_position, plane FROM triage_instance",
    )
    assert rows == [(None, None, "unknown")] * 4


def test_two_senders_of_the_same_study_at_once_store_each_instance_once(
    listener: Listener,
    database_url: str,
    study_files: tuple[SyntheticStudy, list[Path]],
    tmp_path: Path,
) -> None:
    storescu = require_program("storescu", "dcmtk")
    study, paths = study_files
    command = [
        storescu,
        "-aec",
        "RADTRIAGE",
        "127.0.0.1",
        str(listener.port),
        *map(str, paths),
    ]
    senders = [
        ManagedProcess.start(
            f"storescu-{n}",
            command,
            env={**os.environ, **DCMTK_ENV},
            log_path=tmp_path / f"storescu-{n}.log",
        )
        for n in range(2)
    ]
    for sender in senders:
        assert sender.wait_exit(timeout=120) == 0, sender.log_tail()
    assert stored_sop_instance_uids(database_url) == {
        ds.SOPInstanceUID for ds in study.datasets
    }
    [(count,)] = query(database_url, "SELECT instance_count FROM triage_study")
    assert count == len(paths)
    [(series_count,)] = query(database_url, "SELECT instance_count FROM triage_series")
    assert series_count == len(paths)
    stored_files = [
        p for p in files_under(listener.storage_dir) if ".incoming" not in p.parts
    ]
    assert len(stored_files) == len(paths)


def test_dcmsend_of_pydicom_test_files_stores_the_valid_and_refuses_the_broken(
    listener: Listener, database_url: str
) -> None:
    dcmsend = require_program("dcmsend", "dcmtk")
    command = [
        dcmsend,
        "-dn",  # each file in its own transfer syntax, never decompressed
        "-nh",  # go on after a bad file
        "-nuc",  # no UID checks: let the listener judge
        "-aec",
        "RADTRIAGE",
        "127.0.0.1",
        str(listener.port),
    ]
    files = pydicom_test_files()
    valid = [p for p in files if pydicom_file_name(p) not in PYDICOM_BROKEN]
    broken = [p for p in files if pydicom_file_name(p) in PYDICOM_BROKEN]

    sent = run_dcmtk([*command, *map(str, valid)], timeout=300)
    expected = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in valid
    }
    assert stored_sop_instance_uids(database_url) == expected, sent.stderr

    # The broken ones dcmsend can read at all reach the listener and are refused
    # with a status (a C-STORE naming no storage SOP class makes pynetdicom
    # abort that association instead); none is stored, the listener lives on.
    run_dcmtk([*command, *map(str, broken)], timeout=300)
    assert stored_sop_instance_uids(database_url) == expected
    log = listener.process.log_text()
    for refusal in (
        "refused (MissingAttribute, status 0xA900)",
        "refused (TruncatedInstance, status 0xC000)",
    ):
        assert refusal in log
    assert "Traceback" not in log
    echoscu = require_program("echoscu", "dcmtk")
    echo = run_dcmtk([echoscu, "-aec", "RADTRIAGE", "127.0.0.1", str(listener.port)])
    assert echo.returncode == 0


def test_orthanc_forwards_a_study_to_radtriage(
    listener: Listener,
    database_url: str,
    start_orthanc: Callable[..., Orthanc],
    study_files: tuple[SyntheticStudy, list[Path]],
) -> None:
    study, paths = study_files
    orthanc = start_orthanc(
        modalities={"radtriage": ["RADTRIAGE", "127.0.0.1", listener.port]}
    )
    study_id = orthanc.upload(paths)
    response = requests.post(
        f"{orthanc.http_url}/modalities/radtriage/store",
        json={"Resources": [study_id], "Synchronous": True},
        timeout=120,
    )
    assert response.ok, response.text
    assert stored_sop_instance_uids(database_url) == {
        ds.SOPInstanceUID for ds in study.datasets
    }


@pytest.fixture
def web(
    migrated: None,
    manage: Callable[..., str],
    start_process: Callable[..., ManagedProcess],
) -> tuple[str, str]:
    """A real uvicorn web process and an integration account's token."""
    token = manage("set_integration_user", "pacs").strip()
    port = free_port()
    process = start_process(
        "web",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "radtriage.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
    )
    process.wait_for_port(port)
    return f"http://127.0.0.1:{port}", token


def test_dicomweb_client_stores_by_stow_and_finds_by_qido(
    web: tuple[str, str], database_url: str
) -> None:
    base_url, token = web
    client = DICOMwebClient(
        url=f"{base_url}/dicomweb", headers={"Authorization": f"Token {token}"}
    )
    study = ct_study(8, slices=6)

    response = client.store_instances(list(study.datasets))
    assert len(response.ReferencedSOPSequence) == 6
    assert "FailedSOPSequence" not in response
    assert stored_sop_instance_uids(database_url) == {
        ds.SOPInstanceUID for ds in study.datasets
    }

    # Storing the same files again is idempotent.
    client.store_instances(list(study.datasets))
    assert len(stored_sop_instance_uids(database_url)) == 6

    found = client.search_for_studies(search_filters={"PatientID": study.patient_id})
    assert [pydicom.Dataset.from_json(item).StudyInstanceUID for item in found] == [
        study.study_instance_uid
    ]
    [(audits,)] = query(
        database_url,
        "SELECT count(*) FROM triage_auditevent WHERE action = 'dicomweb.search'",
    )
    assert audits == 1


def test_pydicom_test_files_by_stow_valid_ones_stored_and_listed_broken_refused(
    web: tuple[str, str], database_url: str
) -> None:
    base_url, token = web
    files = pydicom_test_files()
    boundary = "pydicomTestFiles"
    body = stow_body(files, boundary)
    response = requests.post(
        f"{base_url}/dicomweb/studies",
        data=body,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": 'multipart/related; type="application/dicom"; '
            f"boundary={boundary}",
            "Accept": "application/dicom+json",
        },
        timeout=120,
    )
    assert response.status_code == 202
    result = pydicom.Dataset.from_json(response.json())
    valid = [p for p in files if pydicom_file_name(p) not in PYDICOM_BROKEN]
    broken = [p for p in files if pydicom_file_name(p) in PYDICOM_BROKEN]
    assert len(result.ReferencedSOPSequence) == len(valid)
    assert [item.FailureReason for item in result.FailedSOPSequence] == [
        PYDICOM_BROKEN[pydicom_file_name(p)] for p in broken
    ]
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in valid]
    assert stored_sop_instance_uids(database_url) == {
        ds.SOPInstanceUID for ds in headers
    }

    client = DICOMwebClient(
        url=f"{base_url}/dicomweb", headers={"Authorization": f"Token {token}"}
    )
    listed = client.search_for_studies(get_remaining=True)
    assert {pydicom.Dataset.from_json(item).StudyInstanceUID for item in listed} == {
        ds.StudyInstanceUID for ds in headers
    }
