"""What the fake HL7 handlers (tests/triage/hl7_fake_handlers.py) and their
tests agree on. A module of its own: importing the handlers registers them,
which only the listener processes under test may do, never the test process."""

from __future__ import annotations

BLOCK_FILE_ENV = "HL7_TEST_BLOCK_FILE"
APPLIED_ACTION = "hl7_test_order_applied"
