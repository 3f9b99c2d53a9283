"""Health of one running process, as a container or service manager probes it.

``manage.py healthcheck --process NAME`` runs one of these from inside the
process's container (or beside the systemd unit) and exits 0 when it is
healthy. Each answers in a few seconds and needs no tools beyond Python.
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from pynetdicom import AE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from radtriage.celery import app as celery_app

PROCESSES = ("web", "worker", "beat", "listener", "hl7-listener", "serve")
PROBE_TIMEOUT_SECONDS = 5.0
# Celery beat writes its schedule file at least every 3 minutes while it runs.
BEAT_STALE_SECONDS = 600.0
HEALTHCHECK_AE_TITLE = "HEALTHCHECK"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Whether the process is healthy, and a one-line reason."""

    healthy: bool
    detail: str


def _local(host: str) -> str:
    """The address to probe a server bound to ``host`` from the same machine."""
    if host in ("", "0.0.0.0"):  # noqa: S104 - compared, never bound
        return "127.0.0.1"
    return "::1" if host == "::" else host


def _host_header() -> str:
    """A host name the web server answers to (ALLOWED_HOSTS applies to probes)."""
    for host in settings.ALLOWED_HOSTS:
        name = host.lstrip(".")
        if name and "*" not in name:
            return name
    return "localhost"


def probe_web(host: str, port: int) -> ProbeResult:
    """``GET /healthz`` answers 200."""
    connection = http.client.HTTPConnection(
        _local(host), port, timeout=PROBE_TIMEOUT_SECONDS
    )
    try:
        connection.request("GET", "/healthz", headers={"Host": _host_header()})
        status = connection.getresponse().status
    except OSError as exc:
        return ProbeResult(False, f"web: {type(exc).__name__} on port {port}")
    finally:
        connection.close()
    return ProbeResult(status == 200, f"web: /healthz answered {status}")


def probe_listener(host: str, port: int, called_ae_title: str) -> ProbeResult:
    """The DICOM listener answers an association request (C-ECHO when accepted).

    A rejection (say, a calling-AE allowlist without this probe's title) is an
    answer too: the listener is up.
    """
    ae = AE(ae_title=HEALTHCHECK_AE_TITLE)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = PROBE_TIMEOUT_SECONDS
    assoc = ae.associate(_local(host), port, ae_title=called_ae_title)
    try:
        if assoc.is_rejected:
            return ProbeResult(True, "listener: association rejected (it answered)")
        if not assoc.is_established:
            return ProbeResult(False, f"listener: no association on port {port}")
        status = assoc.send_c_echo()
        ok = bool(status) and status.Status == 0
        return ProbeResult(ok, "listener: C-ECHO " + ("succeeded" if ok else "failed"))
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def probe_hl7_listener(host: str, port: int) -> ProbeResult:
    """The HL7 listener accepts an MLLP connection.

    Connects and closes without sending: a probe message would be stored
    (every message is) and fill the table with probes.
    """
    try:
        with socket.create_connection(
            (_local(host), port), timeout=PROBE_TIMEOUT_SECONDS
        ):
            return ProbeResult(True, f"hl7-listener: accepting on port {port}")
    except OSError as exc:
        return ProbeResult(False, f"hl7-listener: {type(exc).__name__} on port {port}")


def probe_worker(nodename: str) -> ProbeResult:
    """The Celery worker ``nodename`` answers a ping over the broker."""
    try:
        replies = celery_app.control.ping(
            destination=[nodename], timeout=PROBE_TIMEOUT_SECONDS
        )
    except Exception as exc:  # noqa: BLE001 - a broker failure is an unhealthy answer
        return ProbeResult(False, f"worker: broker unavailable ({type(exc).__name__})")
    answered = any(nodename in reply for reply in replies or [])
    return ProbeResult(
        answered, f"worker: {nodename} " + ("answered" if answered else "silent")
    )


def probe_beat(schedule: Path, *, now: float) -> ProbeResult:
    """Celery beat's schedule file (any of its dbm files) was written lately."""
    files = [
        path for path in schedule.parent.glob(schedule.name + "*") if path.is_file()
    ]
    if not files:
        return ProbeResult(False, f"beat: no schedule file at {schedule}")
    age = now - max(path.stat().st_mtime for path in files)
    return ProbeResult(
        age <= BEAT_STALE_SECONDS, f"beat: schedule written {age:.0f}s ago"
    )


def probe(process: str) -> ProbeResult:
    """Probe ``process`` (one of PROCESSES) as configured by the settings."""
    if process in ("web", "serve"):
        return probe_web(settings.RADTRIAGE_WEB_HOST, settings.RADTRIAGE_WEB_PORT)
    if process == "listener":
        return probe_listener(
            settings.RADTRIAGE_DICOM_HOST,
            settings.RADTRIAGE_DICOM_PORT,
            settings.RADTRIAGE_AE_TITLE,
        )
    if process == "hl7-listener":
        return probe_hl7_listener(
            settings.RADTRIAGE_HL7_HOST, settings.RADTRIAGE_HL7_PORT
        )
    if process == "worker":
        # Celery names a worker celery@<host name> unless told otherwise.
        return probe_worker(f"celery@{socket.gethostname()}")
    if process == "beat":
        return probe_beat(settings.VAR_DIR / "celerybeat-schedule", now=time.time())
    raise ValueError(f"unknown process {process!r}: one of {', '.join(PROCESSES)}")
