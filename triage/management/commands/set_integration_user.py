"""Create or update an integration account for DICOMweb and print its token."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from triage import services


class Command(BaseCommand):
    help = (
        "Create or update USERNAME as an integration account (STOW-RS and QIDO-RS, "
        "and with --orders the order intakes, with an API token) and print the token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="replace the existing token"
        )
        parser.add_argument(
            "--orders",
            action="store_true",
            help="also allow posting orders (POST /api/orders/, FHIR ServiceRequest)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        token = services.set_integration_user(
            options["username"],
            rotate_token=options["rotate"],
            submit_orders=options["orders"],
        )
        # The token is the account's secret: shown to the administrator only.
        self.stdout.write(token)
