"""Run the HL7 v2 MLLP listener (production: its own process)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from triage.hl7.listener import configured_listener


class Command(BaseCommand):
    help = "Run the HL7 v2 listener (MLLP) until SIGTERM or SIGINT."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.RADTRIAGE_HL7_HOST)
        parser.add_argument("--port", type=int, default=settings.RADTRIAGE_HL7_PORT)

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._serve(options["host"], options["port"]))

    async def _serve(self, host: str, port: int) -> None:
        listener = configured_listener(host, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await listener.start()
        self.stdout.write(f"HL7 listener started on {host}:{port}")
        self.stdout.flush()
        await stop.wait()
        # Answers the messages in flight before returning.
        await listener.close()
        self.stdout.write("HL7 listener stopped")
