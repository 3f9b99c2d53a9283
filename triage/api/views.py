"""``POST /api/orders/``: the order intake for interface engines that speak
HTTP. Thin: parse, authorise, call :func:`triage.orders.receive_order`,
answer; every request is audited (orders carry PHI)."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from triage import orders, services
from triage.api.serializers import OrderOutcomeSerializer, OrderSerializer
from triage.roles import SUBMIT_ORDERS
from triage.vocabulary import IntakeSource


class CanSubmitOrders(BasePermission):
    """Integration accounts allowed to post orders (``--orders``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user.has_perm(f"triage.{SUBMIT_ORDERS}"))


class OrderConflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "order_not_applicable"


def audit_order_request(
    request: Request, *, source: IntakeSource, outcome: str, order_id: int | None
) -> None:
    """Record an order request (PHI received) in the audit trail."""
    services.record_audit(
        user=request.user,
        action="submit_order",
        object_type="order",
        object_id="" if order_id is None else str(order_id),
        now=timezone.now(),
        remote_addr=request.META.get("REMOTE_ADDR"),
        detail={"source": source.value, "outcome": outcome},
    )


class OrderIntakeView(APIView):
    """Create or update an imaging order, keyed by its accession number."""

    # Token first, so that an anonymous call gets 401 with WWW-Authenticate.
    authentication_classes = (TokenAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated, CanSubmitOrders)

    @extend_schema(
        request=OrderSerializer,
        responses={
            201: OrderOutcomeSerializer,
            200: OpenApiResponse(
                OrderOutcomeSerializer, description="an order already known: updated"
            ),
            409: OpenApiResponse(
                description="the order contradicts what was received before "
                "(another Study Instance UID for the accession number)"
            ),
        },
    )
    def post(self, request: Request) -> Response:
        """Apply one order (the JSON form of an HL7 ORM^O01 / OMI^O23).

        Posting the same order again changes nothing (200); an order for a
        study already received re-prioritises it; ``cancelled: true`` takes
        the study off the worklist.
        """
        serializer = OrderSerializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
            details = serializer.details()
        except (ValidationError, ValueError) as exc:
            audit_order_request(
                request, source=IntakeSource.API, outcome="invalid", order_id=None
            )
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        try:
            outcome = orders.receive_order(
                details, source=IntakeSource.API, now=timezone.now()
            )
        except orders.OrderNotApplicable as exc:
            audit_order_request(
                request, source=IntakeSource.API, outcome="refused", order_id=None
            )
            raise OrderConflict(exc.reason) from exc
        audit_order_request(
            request,
            source=IntakeSource.API,
            outcome="created" if outcome.created else "updated",
            order_id=outcome.order_id,
        )
        body = OrderOutcomeSerializer(
            {
                "id": outcome.order_id,
                "status": outcome.status.value,
                "study_id": outcome.study_id,
                "changed": outcome.changed,
            }
        ).data
        code = status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK
        return Response(body, status=code)
