"""DICOMweb endpoints: STOW-RS store and QIDO-RS study search.

Who may call them (token or session authentication, CSRF for sessions):

* STOW-RS: integration accounts only (the ``triage.use_dicomweb`` permission;
  see ``manage.py set_integration_user``): machines send images, people don't.
* QIDO-RS: users whose role may see PHI (``triage.view_phi``: radiologists,
  charge technologists) and integration accounts. The results carry PHI, so
  every search is written to the audit trail with the studies it returned.
"""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from rest_framework import status
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from triage import services
from triage.dicomweb import qido, stow
from triage.dicomweb.multipart import (
    MediaType,
    MultipartError,
    boundary_of,
    iter_parts,
)
from triage.ingest.header import is_valid_uid
from triage.roles import USE_DICOMWEB, VIEW_PHI

MULTIPART_RELATED = "multipart/related"


class DicomJsonRenderer(JSONRenderer):
    """PS3.18's JSON media type; plain application/json is offered too."""

    media_type = "application/dicom+json"
    format = "dicom+json"


class CanUseDicomweb(BasePermission):
    """STOW-RS: integration accounts."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.has_perm(f"triage.{USE_DICOMWEB}"))


class CanSearchStudies(BasePermission):
    """QIDO-RS: roles that may see PHI, and integration accounts."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return bool(
            user.has_perm(f"triage.{VIEW_PHI}")
            or user.has_perm(f"triage.{USE_DICOMWEB}")
        )


class _SessionAuthentication(SessionAuthentication):
    """DRF's session authentication, its CSRF check reading Django's request.

    Django's check looks for the token in the form data when no header
    carries it; asked of DRF's request, that parses the body with this view's
    parsers (none), which answers 415 before authorisation has run. Django's
    own request reads no body that is not a form.
    """

    def enforce_csrf(self, request: Request) -> None:
        super().enforce_csrf(request._request)  # type: ignore[arg-type]


class _DicomwebView(APIView):
    # Token first, so that an anonymous call gets 401 with WWW-Authenticate.
    authentication_classes = (TokenAuthentication, _SessionAuthentication)
    renderer_classes = (DicomJsonRenderer, JSONRenderer)
    # The body is read as a stream by STOW-RS itself; DRF parses nothing.
    parser_classes = ()
    # PS3.18 defines these endpoints; they are not part of the REST API's schema.
    schema = None

    def store(self, request: Request, study_instance_uid: str | None) -> Response:
        media_type = MediaType.parse(request.content_type or "")
        related_type = media_type.parameters.get("type", stow.DICOM_MEDIA_TYPE)
        if (
            media_type.type != MULTIPART_RELATED
            or related_type != stow.DICOM_MEDIA_TYPE
        ):
            raise UnsupportedMediaType(request.content_type)
        try:
            boundary = boundary_of(media_type)
            parts = iter_parts(
                request._request,
                boundary,
                max_part_bytes=settings.RADTRIAGE_MAX_INSTANCE_BYTES,
            )
            outcome = stow.store_parts(
                parts, expected_study_uid=study_instance_uid, now=timezone.now()
            )
        except MultipartError as exc:
            raise ParseError(str(exc)) from exc
        if not outcome.stored and not outcome.failed:
            raise ParseError("the request holds no instances")
        services.record_audit(
            user=request.user,
            action="dicomweb.store",
            object_type="study",
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
            detail={
                "study_ids": sorted(outcome.study_ids),
                "stored": len(outcome.stored),
                "failed": len(outcome.failed),
            },
        )
        return Response(outcome.response(), status=outcome.http_status)


class StudiesView(_DicomwebView):
    """``/dicomweb/studies``: POST stores (STOW-RS), GET searches (QIDO-RS)."""

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "POST":
            return [CanUseDicomweb()]
        return [CanSearchStudies()]

    def post(self, request: Request) -> Response:
        return self.store(request, None)

    def get(self, request: Request) -> Response:
        try:
            query = qido.parse_query(dict(request.query_params.lists()))
        except qido.QueryError as exc:
            raise ParseError(str(exc)) from exc
        studies = qido.search(query)
        services.record_audit(
            user=request.user,
            action="dicomweb.search",
            object_type="study",
            now=timezone.now(),
            remote_addr=request.META.get("REMOTE_ADDR"),
            detail={
                "matching_keys": query.matching_keys,
                "study_ids": [study.pk for study in studies],
            },
        )
        return Response([qido.study_json(study) for study in studies])


class StudyView(_DicomwebView):
    """``/dicomweb/studies/{StudyInstanceUID}``: POST stores into that study."""

    permission_classes = (CanUseDicomweb,)

    def post(self, request: Request, study_instance_uid: str) -> Response:
        if not is_valid_uid(study_instance_uid):
            return Response(
                {"detail": "not a valid StudyInstanceUID"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return self.store(request, study_instance_uid)
