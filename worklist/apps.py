"""Priority, reading workflow, alerts, live updates, pages and reports."""

from django.apps import AppConfig


class WorklistConfig(AppConfig):
    name = "worklist"
    verbose_name = "Worklist"
