"""Websocket routes."""

from __future__ import annotations

from typing import Any

from django.urls import path

from worklist.alerts.consumers import AlertConsumer
from worklist.consumers import WorklistConsumer

# django-stubs types path() for views only; Channels routes ASGI apps with it.
websocket_urlpatterns: list[Any] = [
    path("ws/worklist/", WorklistConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/alerts/", AlertConsumer.as_asgi()),  # type: ignore[arg-type]
]
