"""Routes of the FHIR R4 intake, under /fhir/."""

from __future__ import annotations

from django.urls import path

from triage.fhir.views import ServiceRequestCreateView, ServiceRequestView

urlpatterns = [
    path(
        "ServiceRequest",
        ServiceRequestCreateView.as_view(),
        name="fhir-service-request-create",
    ),
    path(
        "ServiceRequest/<int:order_id>",
        ServiceRequestView.as_view(),
        name="fhir-service-request",
    ),
]
