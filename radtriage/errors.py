"""Error pages: JSON for API clients, HTML for people."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found

JSON_PREFIXES = ("/api/", "/dicomweb/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404: a URL that matches no route (a study ID that is not a number too)."""
    if request.path.startswith("/fhir/"):
        # FHIR clients expect an OperationOutcome for an unknown resource type.
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "not-found", "diagnostics": "Not found."}
            ],
        }
        return JsonResponse(outcome, status=404, content_type="application/fhir+json")
    if request.path.startswith(JSON_PREFIXES):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception or Exception())
