"""The base layer: patients, studies, series, instances, ingest and stability."""

import logging

from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Studies and ingest"

    def ready(self) -> None:
        from axes.signals import user_locked_out
        from django.contrib.auth import signals as auth_signals
        from pydicom import config

        from triage import accounts
        from triage.hl7 import handlers as hl7_handlers

        hl7_handlers.register_all()
        auth_signals.user_login_failed.connect(
            accounts.login_failed, dispatch_uid="triage-audit-login-failed"
        )
        auth_signals.user_logged_in.connect(
            accounts.logged_in, dispatch_uid="triage-audit-login"
        )
        auth_signals.user_logged_out.connect(
            accounts.logged_out, dispatch_uid="triage-audit-logout"
        )
        user_locked_out.connect(
            accounts.locked_out, dispatch_uid="triage-audit-lockout"
        )

        # Ingest takes what real modalities send, invalid values included, and
        # pydicom's warnings about them quote the values, which may be PHI.
        # (Importing pydicom resets its logger's level, hence here, not LOGGING.)
        config.settings.reading_validation_mode = config.IGNORE
        logging.getLogger("pydicom").setLevel(logging.ERROR)
