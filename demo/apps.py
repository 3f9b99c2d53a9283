"""The demo app: seed_demo, demo_serve and make_synthetic_study."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "demo"
    verbose_name = "Demo"
