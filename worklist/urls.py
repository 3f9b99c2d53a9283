"""Routes of the worklist app's pages."""

from __future__ import annotations

from django.urls import path

from worklist import views

urlpatterns = [
    path("", views.home, name="home"),
    path("worklist/", views.worklist, name="worklist"),
    path("alerts/", views.alert_board, name="alert-board"),
    path("reports/", views.reports, name="reports"),
]
