"""Choices a site makes of how its department works, as the worklist reads them."""

from __future__ import annotations

from django.conf import settings


def reading_ends_in_ris() -> bool:
    """Whether the RIS's reports, not the readers' buttons, end reading
    (``RADTRIAGE_READING_ENDS_IN``)."""
    return bool(settings.RADTRIAGE_READING_ENDS_IN == "ris")
