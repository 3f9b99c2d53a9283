"""The base layer: patients, studies, series, instances, ingest and stability."""

import logging

from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Studies and ingest"

    def ready(self) -> None:
        from pydicom import config

        # Ingest takes what real modalities send, invalid values included, and
        # pydicom's warnings about them quote the values, which may be PHI.
        # (Importing pydicom resets its logger's level, hence here, not LOGGING.)
        config.settings.reading_validation_mode = config.IGNORE
        logging.getLogger("pydicom").setLevel(logging.ERROR)
