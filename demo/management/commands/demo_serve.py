"""``serve`` with the demo: seeded users and studies, and a live feed of studies.

``./run demo`` runs this. It is ``serve`` itself, plus what its ``start_extras``
hook starts, so the product code it runs is the embedded mode's, unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from demo.feed import feed_demo
from demo.seed import DEMO_CASES, format_logins, seed_demo
from worklist.management.commands import serve

DEMO_SEED_SLICES = 24
DEMO_FEED_SLICES = 16


class Command(serve.Command):
    help = "Run serve with the demo: users, studies and a live feed of studies."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--demo-feed",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="send a synthetic study through the ingest path every SECONDS "
            "(0, the default, sends none)",
        )
        parser.add_argument(
            "--seed-demo",
            action="store_true",
            help="create the demo users (new random passwords) and studies, and "
            "print the logins once the web server is up",
        )

    def start_extras(self, options: dict[str, Any]) -> serve.Extras:
        """Seed the demo and start its feed thread; the feed stops with serve."""
        logins = (
            seed_demo(
                password=None,
                studies=len(DEMO_CASES),
                slices=DEMO_SEED_SLICES,
                now=timezone.now(),
            )
            if options["seed_demo"]
            else {}
        )
        feed_stop = threading.Event()
        if options["demo_feed"] > 0:
            threading.Thread(
                target=feed_demo,
                args=(feed_stop,),
                kwargs={
                    "interval_seconds": options["demo_feed"],
                    "slices": DEMO_FEED_SLICES,
                },
                name="demo-feed",
                daemon=True,
            ).start()
        announce = tuple(format_logins(logins)) if logins else ()
        return serve.Extras(announce=announce, stop=feed_stop.set)
