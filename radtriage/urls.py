"""Top-level URL routes."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from radtriage import health

admin.site.site_header = "RadTriage administration"
handler404 = "radtriage.errors.not_found"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("dicomweb/", include("triage.dicomweb.urls")),
    path("fhir/", include("triage.fhir.urls")),
    path("api/", include("triage.api.urls")),
    path("api/", include("worklist.api.urls")),
    path("", include("worklist.urls")),
]
