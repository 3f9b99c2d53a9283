"""The demo's live feed: a fresh synthetic study every so often, while it serves.

Each study goes through the real ingest path, as the seeded ones do.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import replace

from django.db import close_old_connections
from django.utils import timezone

from demo.seed import DEMO_CASES, DemoCase, seed_case

logger = logging.getLogger(__name__)

# Seeds of the live feed's studies: far from the seeded cases' (101-112).
FEED_FIRST_SEED = 10_000
FEED_SEED_SPAN = 1_000_000


def next_feed_case(index: int) -> DemoCase:
    """The ``index``-th case of the live demo feed: a fresh study each time.

    Cycles through the demo cases with a new seed, so each is a new study (new
    UIDs) showing the same kind of finding.
    """
    case = DEMO_CASES[index % len(DEMO_CASES)]
    return replace(case, seed=FEED_FIRST_SEED + secrets.randbelow(FEED_SEED_SPAN))


def feed_demo(stop: threading.Event, *, interval_seconds: float, slices: int) -> None:
    """Send a synthetic study every ``interval_seconds`` until ``stop`` is set.

    Runs in a thread of ``demo_serve``; each study goes through the real ingest path.
    """
    index = 0
    while not stop.wait(interval_seconds):
        close_old_connections()
        try:
            study_id = seed_case(
                next_feed_case(index),
                slices=slices,
                now=timezone.now(),
                order_first=index % 3 != 2,
            )
            logger.info("demo feed sent study_id=%s", study_id)
        except Exception:
            logger.exception("demo feed could not send a study")
        finally:
            close_old_connections()
        index += 1
