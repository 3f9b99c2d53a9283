"""A database stopped during a send: failure statuses, then nothing lost.

The machine's shared PostgreSQL is never touched: the test starts a private
cluster of its own (initdb, pg_ctl), stops it in the middle of a send and
starts it again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from demo.synthetic import write_study
from tests.harness.processes import REPO_ROOT, ManagedProcess, free_port
from tests.integration.dicom_peers import (
    files_under,
    query,
    require_program,
    run_dcmtk,
    stored_sop_instance_uids,
)
from tests.triage.dicom_data import ct_study

pytest_plugins = ["tests.integration.dicom_peers"]

OUT_OF_RESOURCES = 0xA700


def _postgres_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        require_program("pg_ctl", "postgresql")  # skips, or fails in CI
        return Path(shutil.which("pg_ctl") or "").parent
    return candidates[-1].parent


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, which it may stop at will."""

    bin: Path
    data: Path
    port: int
    as_postgres: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/radtriage"

    def pg_ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        self.pg_ctl("-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="radtriage-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root: use its own system user.
        as_postgres = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data = root / "data"
    subprocess.run(
        [
            *as_postgres,
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = PrivatePostgres(bin_dir, data, free_port(), as_postgres)
    cluster.start()
    with psycopg.connect(
        f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE radtriage")
    yield cluster
    with contextlib.suppress(subprocess.CalledProcessError):
        cluster.stop()  # unless a failed test left it stopped
    shutil.rmtree(root, ignore_errors=True)


def send_until_stored(assoc: Association, dataset: Dataset, *, within: float) -> int:
    deadline = time.monotonic() + within
    while True:
        status = int(assoc.send_c_store(dataset).Status)
        if status != OUT_OF_RESOURCES or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def test_a_database_outage_during_a_send_loses_nothing(
    private_postgres: PrivatePostgres,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
    tmp_path: Path,
) -> None:
    storescu = require_program("storescu", "dcmtk")
    env = {
        **production_env,
        "DATABASE_URL": private_postgres.url,
        # Fail a request fast while the database is away.
        "DATABASE_POOL_TIMEOUT": "1",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=180,
    )
    port = free_port()
    listener = start_process(
        "listener",
        [sys.executable, "manage.py", "dicom_listener"],
        extra_env={
            "DATABASE_URL": private_postgres.url,
            "DATABASE_POOL_TIMEOUT": "1",
            "RADTRIAGE_DICOM_PORT": str(port),
        },
    )
    listener.wait_for_port(port)
    study = ct_study(11, slices=12)
    datasets = list(study.datasets)

    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    assoc = ae.associate("127.0.0.1", port, ae_title="RADTRIAGE")
    assert assoc.is_established
    before = [int(assoc.send_c_store(ds).Status) for ds in datasets[:4]]
    private_postgres.stop()
    during = [int(assoc.send_c_store(ds).Status) for ds in datasets[4:8]]
    private_postgres.start()
    # As a sender's retry queue does: the same association recovers once the
    # connection pool has reconnected.
    after = [send_until_stored(assoc, ds, within=30) for ds in datasets[8:]]
    assoc.release()

    assert before == [0x0000] * 4
    assert during == [OUT_OF_RESOURCES] * 4  # the sender will retry these
    assert after == [0x0000] * 4

    # The sender resends the whole study: every instance is there, once.
    paths = write_study(study, tmp_path / "resend")
    result = run_dcmtk(
        [storescu, "-aec", "RADTRIAGE", "127.0.0.1", str(port), *map(str, paths)]
    )
    assert result.returncode == 0, result.stderr
    assert stored_sop_instance_uids(private_postgres.url) == {
        ds.SOPInstanceUID for ds in datasets
    }
    [(count,)] = query(private_postgres.url, "SELECT instance_count FROM triage_study")
    assert count == 12
    storage = Path(production_env["RADTRIAGE_STORAGE_DIR"])
    stored_files = [p for p in files_under(storage) if ".incoming" not in p.parts]
    assert len(stored_files) == 12  # no orphan from the failed attempts
    assert [p for p in files_under(storage) if ".incoming" in p.parts] == []
    log = listener.log_text()
    assert "refused (StorageUnavailable, status 0xA700)" in log
    assert study.patient_id not in log  # no PHI in the logs
