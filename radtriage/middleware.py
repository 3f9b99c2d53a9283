"""Project-wide HTTP middleware."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every answer Django itself makes.

    Pages, API answers, DICOMweb and heatmaps may all carry PHI, and which of
    them do depends on who asks (a session, or a token that Django's own
    middleware never sees), so none is cached. Static assets are answered by
    whitenoise before this runs and keep their long cache lifetimes.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        response["Cache-Control"] = "no-store"
        return response
