"""Choices a site makes of how its department works, as the worklist reads them."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import transaction

from triage.models import Report

#: How long "no report from the RIS yet" is believed before asking again.
_NO_REPORTS_RECHECK_S = 30.0
_reports_seen_at: float | None = None
_reports_missing_until = 0.0


def _ris_sends_reports() -> bool:
    global _reports_seen_at, _reports_missing_until
    if _reports_seen_at is not None:
        return True  # reports never go away: once seen, always
    if time.monotonic() < _reports_missing_until:
        return False
    if Report.objects.exists():
        # Inside a transaction the report seen may yet roll back: not kept.
        if not transaction.get_connection().in_atomic_block:
            _reports_seen_at = time.monotonic()
        return True
    _reports_missing_until = time.monotonic() + _NO_REPORTS_RECHECK_S
    return False


def reading_ends_in_ris(*, report_arriving: bool = False) -> bool:
    """Whether the RIS's reports, not the readers' buttons, end reading
    (``RADTRIAGE_READING_ENDS_IN``; "auto": once the RIS has sent a report).

    ``report_arriving``: asked while applying a report, which is the feed
    itself (the cache of "no reports yet" must not make it wait).
    """
    global _reports_missing_until
    mode = settings.RADTRIAGE_READING_ENDS_IN
    if report_arriving:
        _reports_missing_until = 0.0  # this process asks again next time
    if mode == "auto":
        return report_arriving or _ris_sends_reports()
    return bool(mode == "ris")


def forget_report_feed() -> None:
    """Ask the database again next time (tests, and a database swapped)."""
    global _reports_seen_at, _reports_missing_until
    _reports_seen_at, _reports_missing_until = None, 0.0
