"""FHIR R4 ``ServiceRequest`` create and update under ``/fhir/``: the order
intake for interface engines that speak FHIR. Thin: parse and validate
(:mod:`triage.fhir.service_request`), authorise, call
:func:`triage.orders.receive_order`, answer; every error is an
OperationOutcome, every request audited."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from fhir.resources.R4B.servicerequest import ServiceRequest
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from radtriage.parsers import BoundedJSONParser
from triage import orders
from triage.api.views import CanSubmitOrders, audit_order_request
from triage.fhir.service_request import (
    InvalidResource,
    Issue,
    order_details_of,
    parse_service_request,
)
from triage.models import Order
from triage.vocabulary import IntakeSource

FHIR_JSON = "application/fhir+json"


class FhirJSONParser(BoundedJSONParser):
    media_type = FHIR_JSON


class FhirJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir+json"


#: HTTP status -> OperationOutcome issue code (FHIR's IssueType).
_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    415: "not-supported",
    422: "business-rule",
}


def operation_outcome(issues: list[Issue], *, code: str) -> dict[str, Any]:
    """An OperationOutcome resource (JSON) with one error issue per problem."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": code,
                "diagnostics": issue.diagnostics,
                **({"expression": [issue.expression]} if issue.expression else {}),
            }
            for issue in issues
        ],
    }


def _outcome_response(
    status_code: int, issues: list[Issue], headers: dict[str, str] | None = None
) -> Response:
    code = _ISSUE_CODES.get(status_code, "processing")
    return Response(
        operation_outcome(issues, code=code),
        status=status_code,
        headers=headers,
        content_type=FHIR_JSON,
    )


def _fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's errors (authentication, permission, parse, method) as outcomes."""
    # As DRF's own handler does: Django's 404 and 403 are API errors too.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    headers: dict[str, str] = {}
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        view = context.get("view")
        request = context.get("request")
        header = view.get_authenticate_header(request) if view and request else None
        if header:
            headers["WWW-Authenticate"] = header
        else:
            exc.status_code = status.HTTP_403_FORBIDDEN
    detail = exc.detail if isinstance(exc.detail, str) else "invalid request"
    return _outcome_response(exc.status_code, [Issue("", str(detail))], headers)


@dataclass(frozen=True, slots=True)
class _Applied:
    outcome: orders.OrderOutcome
    resource: ServiceRequest


class _FhirView(APIView):
    authentication_classes = (TokenAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated, CanSubmitOrders)
    parser_classes = (FhirJSONParser, BoundedJSONParser)
    renderer_classes = (FhirJSONRenderer, JSONRenderer)

    def get_exception_handler(self) -> Callable[..., Response | None]:
        return _fhir_exception_handler

    def _apply(
        self, request: Request, *, order_id: int | None = None
    ) -> Response | _Applied:
        """Validate and apply the body: the order's outcome, or an error."""
        try:
            resource = parse_service_request(request.data)
            details = order_details_of(resource)
        except InvalidResource as exc:
            audit_order_request(
                request, source=IntakeSource.FHIR, outcome="invalid", order_id=order_id
            )
            return _outcome_response(400, exc.issues)
        except ValueError as exc:  # OrderDetails' own checks
            audit_order_request(
                request, source=IntakeSource.FHIR, outcome="invalid", order_id=order_id
            )
            return _outcome_response(400, [Issue("ServiceRequest", str(exc))])
        if order_id is not None:
            refusal = self._check_update(resource, details.accession_number, order_id)
            if refusal is not None:
                audit_order_request(
                    request,
                    source=IntakeSource.FHIR,
                    outcome="refused",
                    order_id=order_id,
                )
                return refusal
        try:
            outcome = orders.receive_order(
                details, source=IntakeSource.FHIR, now=timezone.now()
            )
        except orders.OrderNotApplicable as exc:
            audit_order_request(
                request, source=IntakeSource.FHIR, outcome="refused", order_id=order_id
            )
            return _outcome_response(422, [Issue("ServiceRequest", exc.reason)])
        audit_order_request(
            request,
            source=IntakeSource.FHIR,
            outcome="created" if outcome.created else "updated",
            order_id=outcome.order_id,
        )
        return _Applied(outcome, resource)

    @staticmethod
    def _check_update(
        resource: ServiceRequest, accession: str, order_id: int
    ) -> Response | None:
        if resource.id is not None and resource.id != str(order_id):
            return _outcome_response(
                400, [Issue("ServiceRequest.id", "the id differs from the URL's")]
            )
        known = Order.objects.filter(pk=order_id).values_list(
            "accession_number", flat=True
        )
        if not known:
            return _outcome_response(404, [Issue("", "no ServiceRequest with this id")])
        if known[0] != accession:
            return _outcome_response(
                422,
                [
                    Issue(
                        "ServiceRequest.identifier",
                        "the accession number of an order cannot change",
                    )
                ],
            )
        return None

    @staticmethod
    def _resource_response(applied: _Applied, status_code: int) -> Response:
        body = json.loads(applied.resource.model_dump_json())
        body["id"] = str(applied.outcome.order_id)
        location = reverse("fhir-service-request", args=[applied.outcome.order_id])
        return Response(
            body,
            status=status_code,
            headers={"Location": location},
            content_type=FHIR_JSON,
        )


def _outcome_doc(description: str) -> OpenApiResponse:
    return OpenApiResponse(
        OpenApiTypes.OBJECT, description=f"OperationOutcome: {description}"
    )


_SCHEMA: dict[str, Any] = {
    "request": {FHIR_JSON: {"type": "object"}, "application/json": {"type": "object"}},
    "responses": {
        (201, FHIR_JSON): OpenApiResponse(
            OpenApiTypes.OBJECT, description="the ServiceRequest, with its id"
        ),
        (200, FHIR_JSON): OpenApiResponse(
            OpenApiTypes.OBJECT,
            description="an order already known: updated (or unchanged)",
        ),
        # Every error is an OperationOutcome, in FHIR's media type.
        (400, FHIR_JSON): _outcome_doc("invalid resource or body"),
        (401, FHIR_JSON): _outcome_doc("no credentials"),
        (403, FHIR_JSON): _outcome_doc("not an order integration account"),
        (404, FHIR_JSON): _outcome_doc("no such ServiceRequest"),
        (415, FHIR_JSON): _outcome_doc("not JSON"),
        (422, FHIR_JSON): _outcome_doc("contradicts what was received before"),
    },
}


class ServiceRequestCreateView(_FhirView):
    """``POST /fhir/ServiceRequest``: create an order (or update it by accession)."""

    @extend_schema(**_SCHEMA, operation_id="fhir_service_request_create")
    def post(self, request: Request) -> Response:
        """Apply a ServiceRequest; its ACSN identifier keys the order."""
        applied = self._apply(request)
        if isinstance(applied, Response):
            return applied
        created = applied.outcome.created
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return self._resource_response(applied, code)


class ServiceRequestView(_FhirView):
    """``PUT /fhir/ServiceRequest/{id}``: update a known order."""

    @extend_schema(**_SCHEMA, operation_id="fhir_service_request_update")
    def put(self, request: Request, order_id: int) -> Response:
        """Replace the order's details; status revoked cancels it."""
        applied = self._apply(request, order_id=order_id)
        if isinstance(applied, Response):
            return applied
        return self._resource_response(applied, status.HTTP_200_OK)
