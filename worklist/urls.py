"""Routes of the worklist app's pages."""

from __future__ import annotations

from django.urls import path

from worklist import views
from worklist.alerts import views as alert_views
from worklist.reports import views as report_views

urlpatterns = [
    path("", views.home, name="home"),
    path("worklist/", views.worklist, name="worklist"),
    path("worklist/rows/", views.worklist_rows, name="worklist-rows"),
    path("worklist/rows/<int:study_id>/", views.worklist_row, name="worklist-row"),
    path("worklist/filters/", views.save_filters, name="worklist-save-filters"),
    path(
        "worklist/findings/<int:finding_id>/heatmap",
        views.finding_heatmap,
        name="worklist-heatmap",
    ),
    path(
        "worklist/studies/<int:study_id>/open/",
        views.open_in_viewer,
        name="worklist-open",
    ),
    path(
        "worklist/studies/<int:study_id>/feedback/",
        views.study_feedback,
        name="worklist-feedback",
    ),
    path(
        "worklist/studies/<int:study_id>/<slug:action>/",
        views.study_action,
        name="worklist-action",
    ),
    path("alerts/", alert_views.alert_board, name="alert-board"),
    path("alerts/cards/", alert_views.alert_cards, name="alert-cards"),
    path("alerts/<int:alert_id>/", alert_views.alert_card, name="alert-card"),
    path(
        "alerts/<int:alert_id>/acknowledge/",
        alert_views.acknowledge,
        name="alert-acknowledge",
    ),
    path("reports/", report_views.turnaround, name="reports"),
    path(
        "reports/turnaround/print/",
        report_views.turnaround_print,
        name="reports-turnaround-print",
    ),
    path(
        "reports/turnaround.csv",
        report_views.turnaround_csv,
        name="reports-turnaround-csv",
    ),
    path("reports/ai/", report_views.ai_performance, name="reports-ai"),
    path(
        "reports/studies/<int:study_id>/",
        report_views.study_timeline,
        name="reports-study",
    ),
]
