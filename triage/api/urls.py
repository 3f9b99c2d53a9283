"""Routes of triage's API, under /api/."""

from __future__ import annotations

from django.urls import path

from triage.api.views import OrderIntakeView

urlpatterns = [
    path("orders/", OrderIntakeView.as_view(), name="order-intake"),
]
