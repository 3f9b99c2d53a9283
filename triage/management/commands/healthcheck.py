"""Exit 0 when one RadTriage process is healthy: a container's HEALTHCHECK."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from radtriage.process_health import PROCESSES, probe


class Command(BaseCommand):
    help = (
        "Probe one process (web, worker, beat, listener, hl7-listener, serve) "
        "of this machine."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--process", required=True, choices=PROCESSES)

    def handle(self, *args: Any, **options: Any) -> None:
        result = probe(options["process"])
        if not result.healthy:
            raise CommandError(f"unhealthy: {result.detail}")
        self.stdout.write(f"healthy: {result.detail}")
