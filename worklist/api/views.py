"""Worklist API: list studies most urgent first; claim, release, open, report,
give AI feedback. Thin: parse, authorise, call one service, respond."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import (
    APIException,
    NotAuthenticated,
    NotFound,
    ValidationError,
)
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from triage.models import Study
from triage.services import record_audit
from worklist import services
from worklist.api.filters import StudyFilter
from worklist.api.serializers import (
    FeedbackSerializer,
    OpenedSerializer,
    StudySerializer,
    StudyWithPatientSerializer,
    WorklistFilterSerializer,
)
from worklist.queries import ORDERING, for_worklist
from worklist.vocabulary import ReadingStatus

READ_STUDIES = "triage.read_studies"
VIEW_ALERT_BOARD = "triage.view_alert_board"
VIEW_PHI = "triage.view_phi"


def _reader(request: Request) -> AbstractBaseUser:
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise NotAuthenticated
    return user


class _Transition(Protocol):
    """A reading-workflow service: the study after the reader's move."""

    def __call__(
        self, study_id: int, user: AbstractBaseUser, *, now: datetime
    ) -> Study: ...


def _transition_schema(conflict: str) -> Callable[[Any], Any]:
    """The OpenAPI shape every workflow move shares; only the 409 reason differs."""
    return extend_schema(
        request=None,
        responses={
            200: StudyWithPatientSerializer,
            409: OpenApiResponse(description=conflict),
        },
    )


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class WorklistPagination(CursorPagination):
    """Most urgent first, longest waiting first on ties; stable across pages."""

    ordering = ORDERING
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int | None:
        # DRF quietly falls back to the default for a bad page_size; a client
        # asking for "abc" or 10**30 rows is told instead.
        given = request.query_params.getlist(self.page_size_query_param)
        if given and (
            len(given) > 1
            or not given[0].isascii()
            or not given[0].isdigit()
            or not 1 <= int(given[0]) <= self.max_page_size
        ):
            raise ValidationError(
                {"page_size": [f"a whole number from 1 to {self.max_page_size}"]}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


class WorklistPermission(BasePermission):
    """Readers may act; the charge technologists' board may also look."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if view.action in ("list", "retrieve"):
            return bool(user.has_perm(READ_STUDIES) or user.has_perm(VIEW_ALERT_BOARD))
        return bool(user.has_perm(READ_STUDIES))


class StudyViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Study]
):
    """Studies still to be read, most urgent first."""

    permission_classes = (IsAuthenticated, WorklistPermission)
    # A study ID is a positive bigint: anything else is not a route (404), so no
    # action ever sees "abc" or a number past 2**63.
    lookup_value_regex = r"[0-9]{1,18}"
    pagination_class = WorklistPagination
    filterset_class = StudyFilter

    def get_queryset(self) -> QuerySet[Study]:
        status = self.request.query_params.get("status", "")
        return for_worklist(cancelled=status == ReadingStatus.CANCELLED)

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.request.user.has_perm(VIEW_PHI):
            return StudyWithPatientSerializer
        return StudySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("modality", str, pattern=r"^[A-Za-z0-9 _]{0,16}$"),
            OpenApiParameter("body_part", str, pattern=r"^[A-Za-z0-9 _]{0,64}$"),
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().list(request, *args, **kwargs)
        self._audit("list_studies", [row["id"] for row in response.data["results"]])
        return response

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().retrieve(request, *args, **kwargs)
        self._audit("view_study", [response.data["id"]])
        return response

    def _audit(self, action_name: str, study_ids: Sequence[int]) -> None:
        record_audit(
            user=self.request.user,
            action=action_name,
            object_type="study",
            now=timezone.now(),
            remote_addr=self.request.META.get("REMOTE_ADDR"),
            detail={"study_ids": list(study_ids)},
        )

    def _study_response(self, study: Study) -> Response:
        fresh = (
            self.get_queryset()
            .model.objects.select_related(
                "patient", "scoring", "worklist_entry", "worklist_entry__claimed_by"
            )
            .get(pk=study.pk)
        )
        return Response(self.get_serializer(fresh).data)

    def _act(self, do: Any) -> Response:
        pk = int(self.kwargs["pk"])
        if not Study.objects.filter(pk=pk).exists():
            raise NotFound
        try:
            study = do(pk)
        except services.WorkflowError as exc:
            raise Conflict(str(exc)) from exc
        return self._study_response(study)

    def _transition(self, request: Request, move: _Transition) -> Response:
        return self._act(lambda i: move(i, _reader(request), now=timezone.now()))

    @_transition_schema("claimed by another reader, or final")
    @action(detail=True, methods=["post"])
    def claim(self, request: Request, pk: str) -> Response:
        """Claim the study for reading; exactly one of two racing readers wins."""
        return self._transition(request, services.claim_study)

    @_transition_schema("not held by you")
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str) -> Response:
        """Give the study back to the list."""
        return self._transition(request, services.release_study)

    @_transition_schema("claimed by another reader, or final")
    @action(detail=True, methods=["post"])
    def preliminary(self, request: Request, pk: str) -> Response:
        """Record a preliminary report."""
        return self._transition(request, services.mark_preliminary)

    @_transition_schema("claimed by another reader, or final")
    @action(detail=True, methods=["post"])
    def final(self, request: Request, pk: str) -> Response:
        """Finalize the study (when no RIS reports it); it leaves the list."""
        return self._transition(request, services.mark_final)

    @extend_schema(request=None, responses={200: OpenedSerializer})
    @action(detail=True, methods=["post"])
    def open(self, request: Request, pk: str) -> Response:
        """Record that the study was opened; returns the viewer's deep link."""
        study = Study.objects.filter(pk=int(pk)).first()
        if study is None:
            raise NotFound
        url = services.open_study(
            study.pk,
            _reader(request),
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
        )
        return Response(OpenedSerializer({"viewer_url": url}).data)

    @extend_schema(
        request=FeedbackSerializer,
        responses={
            201: FeedbackSerializer,
            409: OpenApiResponse(description="claimed by another reader"),
        },
    )
    @action(detail=True, methods=["post"])
    def feedback(self, request: Request, pk: str) -> Response:
        """Agree, disagree or be unsure about one AI finding, with a comment."""
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not Study.objects.filter(pk=int(pk)).exists():
            raise NotFound
        data = serializer.validated_data
        try:
            services.record_feedback(
                int(pk),
                data["finding_code"],
                _reader(request),
                verdict=data["verdict"],
                comment=data["comment"],
                now=timezone.now(),
            )
        except services.WorkflowError as exc:
            raise Conflict(str(exc)) from exc
        return Response(serializer.data, status=status.HTTP_201_CREATED)


class WorklistFilterView(APIView):
    """The signed-in reader's worklist filters, kept between sessions."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(responses=WorklistFilterSerializer)
    def get(self, request: Request) -> Response:
        saved = services.worklist_filter_of(_reader(request))
        return Response(WorklistFilterSerializer(saved).data)

    @extend_schema(request=WorklistFilterSerializer, responses=WorklistFilterSerializer)
    def put(self, request: Request) -> Response:
        serializer = WorklistFilterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        saved = services.save_worklist_filter(
            _reader(request), **serializer.validated_data
        )
        return Response(WorklistFilterSerializer(saved).data)
