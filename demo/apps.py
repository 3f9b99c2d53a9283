"""The demo app: its management commands (seed_demo, make_synthetic_study)."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Demo"
