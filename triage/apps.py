"""The base layer: patients, studies, series, instances, ingest and stability."""

from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Studies and ingest"
