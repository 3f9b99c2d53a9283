"""The DICOM listener: C-ECHO and C-STORE for every storage SOP class.

Each association runs in its own thread; every received instance goes through
:func:`triage.ingest.core.store_instance` and is answered only once stored.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from pynetdicom.transport import ThreadedAssociationServer

from triage.ingest.core import store_instance
from triage.ingest.errors import IngestError
from triage.ingest.header import SUPPORTED_TRANSFER_SYNTAXES

logger = logging.getLogger(__name__)

SUCCESS = 0x0000
PROCESSING_FAILURE = 0x0110


def handle_store(event: evt.Event) -> int:
    """Store one instance; answer success only once it is on disk and recorded."""
    try:
        data = event.encoded_dataset()
        outcome = store_instance(data, now=timezone.now())
    except IngestError as exc:
        logger.warning(
            "C-STORE refused (%s, status 0x%04X): %s",
            type(exc).__name__,
            exc.status,
            exc,
        )
        return exc.status
    except Exception:
        # The listener must outlive any input: log without the dataset, refuse.
        logger.exception("C-STORE failed unexpectedly")
        return PROCESSING_FAILURE
    logger.debug(
        "C-STORE %s instance_id=%s study_id=%s",
        outcome.result,
        outcome.instance_id,
        outcome.study_id,
    )
    return SUCCESS


def handle_echo(event: evt.Event) -> int:
    """C-ECHO: the listener is alive."""
    return SUCCESS


def handle_association_end(event: evt.Event) -> None:
    """Each association thread has its own database connection: close it."""
    close_old_connections()


HANDLERS: list[evt.EventHandlerType] = [
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_ECHO, handle_echo),
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
    ae = build_ae()
    address = (settings.RADTRIAGE_DICOM_HOST, settings.RADTRIAGE_DICOM_PORT)
    logger.info("DICOM listener %s on %s:%s", settings.RADTRIAGE_AE_TITLE, *address)
    return ae.start_server(address, block=block, evt_handlers=HANDLERS)
