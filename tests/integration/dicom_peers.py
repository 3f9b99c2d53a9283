"""Real DICOM peers for the ingest integration tests: dcmtk and Orthanc.

A missing peer program skips its tests with the reason; with REQUIRE_SERVICES=1
(CI, where .ci/run installs them) it fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

from tests.harness.processes import ManagedProcess, Processes, free_port

ORTHANC_DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
# dcmtk (and Orthanc, built on it) leave Nagle's algorithm on unless told: about
# 40 ms lost per instance. Every dcmtk-based peer and sender runs with this.
DCMTK_ENV = {"TCP_NODELAY": "1"}


def require_program(name: str, package: str) -> str:
    """The path of a peer program; skips (or fails in CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} is not installed (Debian package {package}); .ci/run installs "
            "it. Set REQUIRE_SERVICES=1 to fail instead of skipping."
        )
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def run_dcmtk(
    args: Sequence[str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool with TCP_NODELAY=1; returns its completed process."""
    return subprocess.run(
        list(args),
        env={**os.environ, **DCMTK_ENV},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Listener:
    """The real ``manage.py dicom_listener`` process."""

    process: ManagedProcess
    port: int
    storage_dir: Path


@pytest.fixture
def start_listener(
    migrated: None,
    production_env: dict[str, str],
    start_process: Callable[..., ManagedProcess],
) -> Callable[..., Listener]:
    def start(**extra_env: str) -> Listener:
        port = free_port()
        process = start_process(
            f"listener-{port}",
            [sys.executable, "manage.py", "dicom_listener"],
            extra_env={
                "RADTRIAGE_DICOM_PORT": str(port),
                "RADTRIAGE_DICOM_HOST": "127.0.0.1",
                **extra_env,
            },
        )
        process.wait_for_port(port)
        storage = Path(
            extra_env.get("RADTRIAGE_STORAGE_DIR")
            or production_env["RADTRIAGE_STORAGE_DIR"]
        )
        return Listener(process, port, storage)

    return start


@pytest.fixture
def listener(start_listener: Callable[..., Listener]) -> Listener:
    return start_listener()


def query(database_url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url) as conn:
        return list(conn.execute(sql).fetchall())


def stored_sop_instance_uids(database_url: str) -> set[str]:
    rows = query(database_url, "SELECT sop_instance_uid FROM triage_instance")
    return {str(row[0]) for row in rows}


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@dataclass
class Orthanc:
    """A private Orthanc server on loopback."""

    process: ManagedProcess
    http_url: str
    dicom_port: int

    def upload(self, paths: Sequence[Path]) -> str:
        """Upload files by REST; returns the Orthanc ID of their study."""
        study_id = ""
        for path in paths:
            response = requests.post(
                f"{self.http_url}/instances", data=path.read_bytes(), timeout=30
            )
            response.raise_for_status()
            study_id = response.json()["ParentStudy"]
        return study_id


@pytest.fixture
def start_orthanc(tmp_path: Path) -> Iterator[Callable[..., Orthanc]]:
    """Start Orthanc with its own storage, on free ports, TCP_NODELAY=1."""
    program = require_program("Orthanc", "orthanc")
    processes = Processes(tmp_path, {**os.environ, **DCMTK_ENV})

    def start(
        *, modalities: dict[str, list[object]] | None = None, dicomweb: bool = False
    ) -> Orthanc:
        if dicomweb and not ORTHANC_DICOMWEB_PLUGIN.exists():
            require_program("libOrthancDicomWeb.so", "orthanc-dicomweb")
        http_port, dicom_port = free_port(), free_port()
        folder = tmp_path / f"orthanc-{http_port}"
        folder.mkdir()
        config: dict[str, object] = {
            "Name": "RadTriageTest",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "index"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": "ORTHANC",
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomModalities": modalities or {},
        }
        if dicomweb:
            config["Plugins"] = [str(ORTHANC_DICOMWEB_PLUGIN)]
            config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        config_path = folder / "orthanc.json"
        config_path.write_text(json.dumps(config))
        process = processes.start(
            "orthanc", [program, str(config_path)], log_path=folder / "orthanc.log"
        )
        url = f"http://127.0.0.1:{http_port}"
        process.wait_for_http(f"{url}/system")
        return Orthanc(process, url, dicom_port)

    with processes:
        yield start
