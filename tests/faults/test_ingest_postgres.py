# Fixtures are imported from the integration suite: their names are reused as
# the test functions' parameters, as pytest wants.
# ruff: noqa: F811
"""Ingest against a real PostgreSQL of the test's own: a restart, values it
refuses, and a multi-part STOW of new patients (issue 13, defects 6 and 7).

The machine's shared PostgreSQL is never restarted: each test starts a private
cluster (initdb, pg_ctl) that logs to a file the test then reads.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
import requests
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import dcmread
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from tests.harness.processes import ManagedProcess, free_port, run_manage
from tests.harness.services import (  # noqa: F401 - fixtures
    database_url,
    postgres_admin_url,
    production_env,
    redis_url,
    start_process,
)
from tests.harness.web import web_command
from tests.integration.dicom_peers import query
from tests.integration.test_ingest_outage import (  # noqa: F401 - fixture
    PrivatePostgres,
    private_postgres,
)
from tests.triage.dicom_data import ct_study, encode, modified

pytestmark = pytest.mark.integration

SUCCESS = 0x0000
BOUNDARY = "RadTriageFaultBoundary"


def on_private(
    private_postgres: PrivatePostgres, production_env: dict[str, str]
) -> dict[str, str]:
    env = {
        **production_env,
        "DATABASE_URL": private_postgres.url,
        "DATABASE_POOL_TIMEOUT": "2",
    }
    run_manage(env, "migrate", "--noinput", timeout=180)
    return env


def server_errors(private_postgres: PrivatePostgres) -> list[str]:
    log = (private_postgres.data / "server.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "ERROR:" in line]


def start_listener(
    start_process: Callable[..., ManagedProcess], env: dict[str, str]
) -> int:
    port = free_port()
    listener = start_process(
        "listener",
        [sys.executable, "manage.py", "dicom_listener"],
        extra_env={**env, "RADTRIAGE_DICOM_PORT": str(port)},
    )
    listener.wait_for_port(port)
    return port


def associate(port: int) -> Association:
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADTRIAGE")
    assert assoc.is_established
    return assoc


def decoded(data: bytes) -> Dataset:
    return dcmread(DicomBytesIO(data))


def test_the_first_c_store_after_a_postgres_restart_is_stored(
    private_postgres: PrivatePostgres,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
) -> None:
    env = on_private(private_postgres, production_env)
    port = start_listener(start_process, env)
    datasets = list(ct_study(21, slices=4).datasets)
    assoc = associate(port)
    first = int(assoc.send_c_store(datasets[0]).Status)
    private_postgres.stop()
    private_postgres.start()
    # The association's pooled connection died with the server.
    after_restart = int(assoc.send_c_store(datasets[1]).Status)
    assoc.release()
    fresh = associate(port)
    on_new_association = [int(fresh.send_c_store(ds).Status) for ds in datasets[2:]]
    fresh.release()

    assert [first, after_restart, *on_new_association] == [SUCCESS] * 4
    [(count,)] = query(private_postgres.url, "SELECT count(*) FROM triage_instance")
    assert count == 4


def test_values_postgres_refuses_are_normalised_or_refused_for_good(
    private_postgres: PrivatePostgres,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
) -> None:
    env = on_private(private_postgres, production_env)
    port = start_listener(start_process, env)
    dataset = ct_study(22, slices=1).datasets[0]
    nul_name = decoded(modified(dataset, PatientName="DOE^JO\x00HN"))
    nan_slope = decoded(modified(dataset, RescaleSlope="nan"))
    assoc = associate(port)
    statuses = [int(assoc.send_c_store(ds).Status) for ds in (nan_slope, nul_name)]
    assoc.release()

    # Before: both 0xA700 "out of resources", which senders retry for ever.
    assert statuses == [0xA900, SUCCESS]
    assert query(private_postgres.url, "SELECT patient_name FROM triage_patient") == [
        ("DOE^JOHN",)
    ]
    assert server_errors(private_postgres) == []


def multipart(*instances: bytes) -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + data
        + b"\r\n"
        for data in instances
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def test_a_multi_part_stow_of_new_patients_leaves_no_error_in_the_server_log(
    private_postgres: PrivatePostgres,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
) -> None:
    env = on_private(private_postgres, production_env)
    token = run_manage(env, "set_integration_user", "pacs", timeout=180).strip()
    port = free_port()
    web = start_process(
        "web",
        web_command(port),
        extra_env={**env, "RADTRIAGE_STOW_CONCURRENCY": "4"},
    )
    web.wait_for_port(port)
    studies = [ct_study(30 + n, slices=4) for n in range(4)]
    # Each study's parts one after another: four threads take the four parts
    # of a new study at once and race to create its patient, study and series.
    body = multipart(*(encode(ds) for study in studies for ds in study.datasets))
    response = requests.post(
        f"http://127.0.0.1:{port}/dicomweb/studies",
        data=body,
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": (
                f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
            ),
            "Accept": "application/dicom+json",
        },
        timeout=120,
    )
    assert response.status_code == 200, response.text
    [(patients, instances)] = query(
        private_postgres.url,
        "SELECT (SELECT count(*) FROM triage_patient),"
        " (SELECT count(*) FROM triage_instance)",
    )
    assert (patients, instances) == (4, 16)
    errors = server_errors(private_postgres)
    assert errors == [], errors
    log = (private_postgres.data / "server.log").read_text(errors="replace")
    for study in studies:
        assert study.patient_id not in log
