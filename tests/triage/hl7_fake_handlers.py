"""HL7 handlers for tests that run a real listener process.

Named in ``RADTRIAGE_HL7_HANDLER_MODULES``, so the listener and ``hl7_replay``
processes register them on start-up. Applying an order writes one audit row
(object id: the control id), so a test counts how often it was applied. While
the file named by ``HL7_TEST_BLOCK_FILE`` exists, applying an order waits: a
test kills the listener there, after the store and before the apply commits.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.utils import timezone

from tests.triage.hl7_fake_names import APPLIED_ACTION, BLOCK_FILE_ENV
from triage.hl7.dispatch import NotApplicable, register
from triage.hl7.messages import ERR_UNKNOWN_KEY, OrderMessage, ReportMessage
from triage.services import record_audit


def record_order(message: OrderMessage) -> None:
    block = os.environ.get(BLOCK_FILE_ENV)
    while block and Path(block).exists():
        time.sleep(0.05)
    record_audit(
        user=None,
        action=APPLIED_ACTION,
        object_type="hl7_control_id",
        object_id=message.header.control_id,
        now=timezone.now(),
    )


def refuse_report(message: ReportMessage) -> None:
    raise NotApplicable("no study has this accession number", ERR_UNKNOWN_KEY)


register("ORM", "O01", record_order, replace=True)
register("ORU", "R01", refuse_report, replace=True)
