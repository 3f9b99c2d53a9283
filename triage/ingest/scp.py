"""The DICOM listener: C-ECHO and C-STORE for every storage SOP class.

Each association runs in its own thread; every received instance goes through
:func:`triage.ingest.core.store_dataset` and is answered only once stored. No
input ends the listener: a handler turns every failure into a status, and
pynetdicom aborts an association that breaks the protocol, nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from io import BytesIO

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from triage.ingest.core import store_dataset
from triage.ingest.errors import IngestError, InstanceTooLarge
from triage.ingest.header import STORAGE_SOP_CLASSES, SUPPORTED_TRANSFER_SYNTAXES
from triage.ingest.storage import sweep_incoming
from triage.ingest.transport import Limits, OversizedDataSet, tune_server

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110
_C_STORE_RQ = 0x0001  # Command Field (PS3.7 E.1)

# No write in flight takes an hour: older temporaries were left by a crash.
_STALE_TEMPORARY_SECONDS = 3600.0


def handle_store(event: evt.Event) -> int:
    """Store one instance; answer success only once it is on disk and recorded."""
    calling_ae = _calling_ae(event)
    try:
        request = event.request
        if not isinstance(request, C_STORE) or not isinstance(request.DataSet, BytesIO):
            raise TypeError("C-STORE without a data set")
        if isinstance(request.DataSet, OversizedDataSet):
            limit = settings.RADTRIAGE_MAX_INSTANCE_BYTES
            raise InstanceTooLarge(
                f"instance of {request.DataSet.size} bytes exceeds {limit}"
            )
        # A view, not getvalue(): the file meta is joined to it in one copy.
        with request.DataSet.getbuffer() as dataset:
            outcome = store_dataset(
                dataset,
                sop_class_uid=str(request.AffectedSOPClassUID),
                sop_instance_uid=str(request.AffectedSOPInstanceUID),
                transfer_syntax_uid=str(event.context.transfer_syntax),
                now=timezone.now(),
            )
    except IngestError as exc:
        logger.warning(
            "C-STORE from %s refused (%s, status 0x%04X): %s",
            calling_ae,
            type(exc).__name__,
            exc.status,
            exc,
        )
        if exc.transient:
            # A failed database connection is useless to the next instance.
            close_old_connections()
        return exc.status
    except Exception:
        # The listener must outlive any input: log without the dataset, refuse.
        logger.exception("C-STORE from %s failed unexpectedly", calling_ae)
        close_old_connections()
        return PROCESSING_FAILURE
    logger.debug(
        "C-STORE %s instance_id=%s study_id=%s",
        outcome.result,
        outcome.instance_id,
        outcome.study_id,
    )
    return SUCCESS


def handle_dimse_received(event: evt.Event) -> None:
    """Route a C-STORE naming a non-storage SOP class to the store handler.

    pynetdicom picks the service by the request's Affected SOP Class UID and
    aborts the whole association when that is not a storage class, which
    loses every instance queued after it. Naming the presentation context's
    (storage) class instead lets :func:`handle_store` refuse that one instance
    with a status: its data set is checked on its own merits.
    """
    message = event.message
    command = message.command_set
    if command.get("CommandField") != _C_STORE_RQ:
        return
    if str(command.get("AffectedSOPClassUID", "")) in STORAGE_SOP_CLASSES:
        return
    for context in event.assoc.accepted_contexts:
        if context.context_id == message.context_id and context.abstract_syntax:
            logger.warning(
                "C-STORE from %s names a SOP class unlike its presentation context",
                _calling_ae(event),
            )
            command.AffectedSOPClassUID = context.abstract_syntax
            return


def handle_echo(event: evt.Event) -> int:
    """C-ECHO: the listener is alive."""
    return SUCCESS


def handle_association_end(event: evt.Event) -> None:
    """Each association thread has its own database connection: close it."""
    close_old_connections()


def _calling_ae(event: evt.Event) -> str:
    # AE titles name machines, not patients: safe to log.
    try:
        return str(event.assoc.requestor.ae_title).strip() or "?"
    except AttributeError:
        return "?"


HANDLERS: list[evt.EventHandlerType] = [
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_ECHO, handle_echo),
    (evt.EVT_DIMSE_RECV, handle_dimse_received),
    (evt.EVT_RELEASED, handle_association_end),
    (evt.EVT_ABORTED, handle_association_end),
]


def build_ae() -> AE:
    """The application entity as configured in settings."""
    ae = AE(ae_title=settings.RADTRIAGE_AE_TITLE)
    ae.maximum_associations = settings.RADTRIAGE_DICOM_MAX_ASSOCIATIONS
    ae.maximum_pdu_size = settings.RADTRIAGE_DICOM_MAX_PDU
    if settings.RADTRIAGE_DICOM_CALLING_AE_ALLOWLIST:
        ae.require_calling_aet = settings.RADTRIAGE_DICOM_CALLING_AE_ALLOWLIST
    transfer_syntaxes = sorted(SUPPORTED_TRANSFER_SYNTAXES)
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax is not None:
            ae.add_supported_context(context.abstract_syntax, transfer_syntaxes)
    ae.add_supported_context(Verification)
    return ae


def start_listener(*, block: bool) -> ThreadedAssociationServer | None:
    """Listen on the configured address; returns the server unless blocking."""
    removed = sweep_incoming(
        settings.RADTRIAGE_STORAGE_DIR,
        older_than_seconds=_STALE_TEMPORARY_SECONDS,
        now=time.time(),
    )
    if removed:
        logger.warning("removed %d temporary files left by a crash", removed)
    ae = build_ae()
    address = (settings.RADTRIAGE_DICOM_HOST, settings.RADTRIAGE_DICOM_PORT)
    logger.info("DICOM listener %s on %s:%s", settings.RADTRIAGE_AE_TITLE, *address)
    server = ae.start_server(address, block=False, evt_handlers=HANDLERS)
    if server is None:  # pragma: no cover - pynetdicom returns it when not blocking
        raise RuntimeError("the DICOM listener did not start")
    limits = Limits(
        # 0 offers no limit (PS3.8 D.1): a PDU still holds no more than a message.
        data_pdu_bytes=settings.RADTRIAGE_DICOM_MAX_PDU
        or settings.RADTRIAGE_MAX_INSTANCE_BYTES,
        message_bytes=settings.RADTRIAGE_MAX_INSTANCE_BYTES,
    )
    tune_server(server, limits)
    if not block:
        return server
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
    return None
