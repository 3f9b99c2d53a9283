"""The pages each role lands on after login."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone

from triage import services
from triage.models import Study
from triage.roles import LANDING_ORDER, Role

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


@permission_required("triage.read_studies", raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The radiologist's worklist: studies still to be read, most urgent first."""
    studies = list(Study.objects.for_worklist()[:WORKLIST_PAGE_SIZE])
    services.record_audit(
        user=request.user,
        action="view_worklist",
        object_type="study",
        now=timezone.now(),
        remote_addr=request.META.get("REMOTE_ADDR"),
        detail={"study_ids": [study.pk for study in studies]},
    )
    return render(request, "worklist/worklist.html", {"studies": studies})


@permission_required("triage.view_alert_board", raise_exception=True)
def alert_board(request: HttpRequest) -> HttpResponse:
    """The charge technologists' critical-finding board."""
    return render(request, "worklist/alert_board.html")


@permission_required("triage.view_reports", raise_exception=True)
def reports(request: HttpRequest) -> HttpResponse:
    """The department head's turnaround and AI-performance reports."""
    return render(request, "worklist/reports.html")
