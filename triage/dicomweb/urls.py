"""Routes under /dicomweb/ (PS3.18 paths, with or without a trailing slash)."""

from __future__ import annotations

from django.urls import re_path

from triage.dicomweb import views

urlpatterns = [
    re_path(r"^studies/?$", views.StudiesView.as_view(), name="dicomweb-studies"),
    re_path(
        r"^studies/(?P<study_instance_uid>[^/]+)/?$",
        views.StudyView.as_view(),
        name="dicomweb-study",
    ),
]
