"""Routes of the worklist API, under /api/."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from worklist.api.views import StudyViewSet, WorklistFilterView

router = SimpleRouter()
router.register("studies", StudyViewSet, basename="study")

urlpatterns = [
    path("worklist/filters/", WorklistFilterView.as_view(), name="worklist-filters"),
    *router.urls,
]
