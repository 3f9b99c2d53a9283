"""The pages each role lands on after login."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from inference.models import Finding
from triage import services
from triage.models import Study
from triage.roles import LANDING_ORDER, Role
from triage.vocabulary import PatientClass, choices
from worklist import services as worklist_services
from worklist.api.filters import StudyFilter
from worklist.api.serializers import FeedbackSerializer, WorklistFilterSerializer
from worklist.models import WorklistFilter
from worklist.queries import ROW_RELATED, for_worklist
from worklist.rows import MODALITY_CHOICES, StudyRow, with_live_findings
from worklist.vocabulary import ReadingStatus

LANDING_PAGES: dict[Role, str] = {
    Role.RADIOLOGIST: "worklist",
    Role.CHARGE_TECHNOLOGIST: "alert-board",
    Role.DEPARTMENT_HEAD: "reports",
    Role.ADMINISTRATOR: "admin:index",
}

WORKLIST_PAGE_SIZE = 100


def landing_url(user: AbstractBaseUser | AnonymousUser) -> str | None:
    """The page a user's role starts on, or None when the user holds no role."""
    if getattr(user, "is_superuser", False):
        return reverse(LANDING_PAGES[Role.ADMINISTRATOR])
    group_names = set(user.groups.values_list("name", flat=True))  # type: ignore[union-attr]
    for role in LANDING_ORDER:
        if role.value in group_names:
            return reverse(LANDING_PAGES[role])
    return None


def home(request: HttpRequest) -> HttpResponse:
    """Send each user to their role's page."""
    url = landing_url(request.user)
    if url is None:
        return render(request, "worklist/no_role.html", status=403)
    return redirect(url)


READ_STUDIES = "triage.read_studies"


def _saved_filters(request: HttpRequest) -> WorklistFilter:
    return worklist_services.worklist_filter_of(_reader(request))


def _reader(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise PermissionDenied
    return user


def _filtered(request: HttpRequest, saved: WorklistFilter) -> QuerySet[Study]:
    data = {
        "modality": saved.modality,
        "body_part": saved.body_part,
        "patient_class": saved.patient_class,
        "status": saved.reading_status,
        "ai_flagged": "" if saved.ai_flagged is None else str(saved.ai_flagged),
        "mine": str(saved.mine),
    }
    queryset = with_live_findings(
        for_worklist(cancelled=saved.reading_status == ReadingStatus.CANCELLED)
    )
    filtered: QuerySet[Study] = StudyFilter(
        data={k: v for k, v in data.items() if v}, queryset=queryset, request=request
    ).qs
    return filtered


def _audit_rows(request: HttpRequest, action: str, study_ids: list[int]) -> None:
    services.record_audit(
        user=request.user,
        action=action,
        object_type="study",
        now=timezone.now(),
        remote_addr=request.META.get("REMOTE_ADDR"),
        detail={"study_ids": study_ids},
    )


#: The session key of the studies whose rows this session was shown (and the
#: showing audited); at most SHOWN_LIMIT, the oldest forgotten first.
SHOWN_KEY = "worklist_shown"
SHOWN_LIMIT = 2000


def _shown(request: HttpRequest, study_ids: list[int]) -> list[int]:
    """Note rows shown to this session; the ones it had not been shown before.

    A row fetched again after a live delta is the same access to the same
    study by the same reader in the same session: the first showing was
    audited, with the study's id, so the refetch is not audited again. A new
    session (or a study never shown in this one) is audited afresh.
    """
    known: list[int] = request.session.get(SHOWN_KEY, [])
    seen = set(known)
    new = [pk for pk in study_ids if pk not in seen]
    if new:
        request.session[SHOWN_KEY] = (known + new)[-SHOWN_LIMIT:]
    return new


def _rows(request: HttpRequest) -> list[StudyRow]:
    studies = list(_filtered(request, _saved_filters(request))[:WORKLIST_PAGE_SIZE])
    ids = [study.pk for study in studies]
    _shown(request, ids)
    _audit_rows(request, "view_worklist", ids)
    return [StudyRow.of(study, request.user) for study in studies]


@permission_required(READ_STUDIES, raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The radiologist's worklist: studies still to be read, most urgent first."""
    saved = _saved_filters(request)
    return render(
        request,
        "worklist/worklist.html",
        {
            "rows": _rows(request),
            "filters": saved,
            "modalities": MODALITY_CHOICES,
            "patient_classes": choices(PatientClass),
            "statuses": [
                choice for choice in choices(ReadingStatus) if choice[0] != "final"
            ],
        },
    )


@permission_required(READ_STUDIES, raise_exception=True)
def worklist_rows(request: HttpRequest) -> HttpResponse:
    """The worklist's rows alone, for a resync after a gap or a reconnect."""
    return render(request, "worklist/_study_rows.html", {"rows": _rows(request)})


@permission_required(READ_STUDIES, raise_exception=True)
def worklist_row(request: HttpRequest, study_id: int) -> HttpResponse:
    """One row, or 204 when the study is no longer in this reader's list."""
    study = _filtered(request, _saved_filters(request)).filter(pk=study_id).first()
    if study is None:
        return HttpResponse(status=204)
    if _shown(request, [study.pk]):
        _audit_rows(request, "view_worklist_row", [study.pk])
    return _render_row(request, study)


def _render_row(request: HttpRequest, study: Study, error: str = "") -> HttpResponse:
    row = StudyRow.of(study, request.user, error=error)
    return render(request, "worklist/_study_row.html", {"row": row})


@require_POST
@permission_required(READ_STUDIES, raise_exception=True)
def save_filters(request: HttpRequest) -> HttpResponse:
    """Keep the reader's filters for their next session."""
    form = WorklistFilterSerializer(
        data={
            "modality": request.POST.get("modality", ""),
            "body_part": request.POST.get("body_part", "").strip(),
            "patient_class": request.POST.get("patient_class", ""),
            "reading_status": request.POST.get("reading_status", ""),
            "ai_flagged": {"yes": True, "no": False}.get(
                request.POST.get("ai_flagged", "")
            ),
            "mine": request.POST.get("mine") == "on",
        }
    )
    if form.is_valid():
        worklist_services.save_worklist_filter(_reader(request), **form.validated_data)
    return redirect("worklist")


_ACTIONS = {
    "claim": worklist_services.claim_study,
    "release": worklist_services.release_study,
    "final": worklist_services.mark_final,
}


@require_POST
@permission_required(READ_STUDIES, raise_exception=True)
def study_action(request: HttpRequest, study_id: int, action: str) -> HttpResponse:
    """Claim, release or finalize from the page; answers with the fresh row."""
    do = _ACTIONS.get(action)
    if do is None or not Study.objects.filter(pk=study_id).exists():
        raise Http404
    error = ""
    try:
        do(study_id, _reader(request), now=timezone.now())
    except worklist_services.WorkflowError as exc:
        error = str(exc)
    if not getattr(request, "htmx", False):
        return redirect("worklist")
    study = (
        with_live_findings(Study.objects.all())
        .select_related(*ROW_RELATED)
        .filter(pk=study_id, worklist_entry__isnull=False)
        .first()
    )
    if study is None or study.worklist_entry.reading_status == ReadingStatus.FINAL:
        return HttpResponse("")  # the row leaves the list
    return _render_row(request, study, error)


@require_POST
@permission_required(READ_STUDIES, raise_exception=True)
def study_feedback(request: HttpRequest, study_id: int) -> HttpResponse:
    """A verdict on the study's AI finding, from the row's buttons."""
    form = FeedbackSerializer(data=request.POST)
    if not form.is_valid() or not Study.objects.filter(pk=study_id).exists():
        return HttpResponse("Choose agree, disagree or unsure.", status=400)
    try:
        worklist_services.record_feedback(
            study_id,
            form.validated_data["finding_code"],
            _reader(request),
            verdict=form.validated_data["verdict"],
            comment=form.validated_data["comment"],
            now=timezone.now(),
        )
    except worklist_services.WorkflowError as exc:
        return HttpResponse(str(exc), status=409)
    return HttpResponse(f"Feedback recorded: {form.validated_data['verdict']}")


@permission_required(READ_STUDIES, raise_exception=True)
def finding_heatmap(request: HttpRequest, finding_id: int) -> FileResponse:
    """The key slice with the model's heatmap, as the row's thumbnail."""
    finding = Finding.objects.filter(pk=finding_id).exclude(heatmap_path="").first()
    if finding is None:
        raise Http404
    root = Path(settings.RADTRIAGE_STORAGE_DIR).resolve()
    path = (root / finding.heatmap_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise Http404
    _audit_rows(request, "view_heatmap", [finding.study_id])
    response = FileResponse(path.open("rb"), content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=3600"
    return response


@permission_required(READ_STUDIES, raise_exception=True)
def open_in_viewer(request: HttpRequest, study_id: int) -> HttpResponse:
    """Record the opening, then go to the site's viewer."""
    if not Study.objects.filter(pk=study_id).exists():
        raise Http404
    url = worklist_services.open_study(
        study_id,
        _reader(request),
        now=timezone.now(),
        remote_addr=request.META.get("REMOTE_ADDR"),
    )
    return HttpResponseRedirect(url)
