"""Run the DICOM C-STORE/C-ECHO listener (production: its own process)."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from triage.ingest.scp import start_listener


class Command(BaseCommand):
    help = "Run the DICOM listener until SIGTERM or SIGINT."

    def handle(self, *args: Any, **options: Any) -> None:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        server = start_listener(block=False)
        if server is None:
            raise CommandError("the DICOM listener did not start")
        self.stdout.write("DICOM listener started")
        stop.wait()
        # Finishes the associations in flight before returning.
        server.shutdown()
        self.stdout.write("DICOM listener stopped")
