"""Apply stored HL7 messages left pending (a crash between storing and applying)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage.hl7 import dispatch
from triage.hl7.services import replay_pending
from triage.models import HL7Message


class Command(BaseCommand):
    help = (
        "Apply pending HL7 messages, oldest first: all of them, or those named "
        "by id. A message no longer pending is left as it is."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "ids", nargs="*", type=int, help="HL7 message ids (default: all pending)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dispatch.load_handler_modules(settings.RADTRIAGE_HL7_HANDLER_MODULES)
        rows = replay_pending(options["ids"])
        for row in rows:
            self.stdout.write(
                f"HL7 message #{row.pk}: {row.outcome} ({row.ack_code or '-'})"
            )
        self.stdout.write(f"{len(rows)} message(s) replayed")
        pending = sum(row.outcome == HL7Message.Outcome.PENDING for row in rows)
        if pending:
            raise CommandError(
                f"{pending} message(s) still pending (see the log; is "
                "RADTRIAGE_HL7_HANDLER_MODULES as the listener's?)"
            )
