"""Create or update a user with one role; the password comes from stdin or env."""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from triage import services
from triage.roles import Role


class Command(BaseCommand):
    help = (
        "Create or update USERNAME with ROLE. The password is read from the "
        "RADTRIAGE_PASSWORD environment variable, else from standard input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("role", choices=[role.value for role in Role])

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("RADTRIAGE_PASSWORD") or sys.stdin.readline().strip()
        if len(password) < 8:
            raise CommandError("the password must have at least 8 characters")
        services.set_role_user(options["username"], Role(options["role"]), password)
        self.stdout.write(f"user {options['username']} now has role {options['role']}")
