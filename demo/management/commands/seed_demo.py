"""Seed the demo: one user per role (passwords printed) and synthetic studies."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from demo.seed import DEMO_CASES, format_logins, seed_demo


class Command(BaseCommand):
    help = "Create the demo users and send the demo studies; safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--studies", type=int, default=len(DEMO_CASES), help="how many studies"
        )
        parser.add_argument(
            "--slices", type=int, default=24, help="slices per CT head study"
        )
        parser.add_argument(
            "--password", help="one password for every demo user (default: random)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        studies = min(max(0, options["studies"]), len(DEMO_CASES))
        logins = seed_demo(
            password=options["password"],
            studies=studies,
            slices=options["slices"],
            now=timezone.now(),
        )
        self.stdout.write(f"Seeded {studies} synthetic studies.")
        for line in format_logins(logins):
            self.stdout.write(line)
