"""No-op HL7 handlers for the bench, until the order and report services are glued.

Named in the listener's ``RADTRIAGE_HL7_HANDLER_MODULES``; they apply nothing, so
the bench measures framing, parsing, storing and acknowledging.
"""

from __future__ import annotations

from typing import Any

from triage.hl7.dispatch import register


def ignore(message: Any) -> None:
    """Accept the message and apply nothing."""


register("ORM", "O01", ignore, replace=True)
register("ORU", "R01", ignore, replace=True)
