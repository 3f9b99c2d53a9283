"""Report (or remove) stored files that no instance row names."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from triage.ingest.orphans import find_orphans


class Command(BaseCommand):
    help = (
        "Look for files under RADTRIAGE_STORAGE_DIR that no instance is recorded "
        "with (left by a crash between a file's rename and its commit). Reports "
        "them; --remove removes them. The scheduler runs this with --remove "
        "every RADTRIAGE_STORAGE_AUDIT_HOURS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--remove", action="store_true", help="remove what is found"
        )
        parser.add_argument(
            "--older-than-minutes",
            type=float,
            default=60.0,
            help="only files untouched this long (default 60)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = find_orphans(
            settings.RADTRIAGE_STORAGE_DIR,
            older_than_seconds=options["older_than_minutes"] * 60,
            now=time.time(),
            remove=options["remove"],
        )
        for path in result.unrecorded:
            self.stdout.write(str(path))
        summary = (
            f"{result.checked} stored files checked, "
            f"{len(result.unrecorded)} recorded by no instance"
        )
        if options["remove"]:
            summary += f", {result.removed} removed"
        self.stdout.write(summary)
