"""The charge technologists' board: pages, alert cards, acknowledgement."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth.decorators import permission_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from triage.services import record_audit
from worklist.alerts import services
from worklist.alerts.models import Alert

VIEW_BOARD = "triage.view_alert_board"
ACKNOWLEDGE = "triage.acknowledge_alerts"
HISTORY_LIMIT = 200
STATUS_FILTERS = ("unresolved", "open", "acknowledged", "resolved", "all")


@dataclass(frozen=True, slots=True)
class BoardFilters:
    """The board's filters, from the query string, normalised."""

    status: str = "unresolved"
    finding: str = ""
    days: int = 1

    @classmethod
    def parse(cls, request: HttpRequest) -> BoardFilters:
        status = request.GET.get("status", "unresolved")
        try:
            days = min(max(int(request.GET.get("days", "1")), 1), 90)
        except ValueError:
            days = 1
        return cls(
            status=status if status in STATUS_FILTERS else "unresolved",
            finding=request.GET.get("finding", "").strip()[:32],
            days=days,
        )


#: What an alert card shows beyond the alert: the study, its patient and order.
CARD_RELATED = ("study", "study__patient", "study__order", "acknowledged_by")


def _alerts(filters: BoardFilters) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related(*CARD_RELATED).order_by(
        "-escalated_at", "status", "-raised_at"
    )
    if filters.status == "unresolved":
        alerts = alerts.unresolved()
    else:
        if filters.status != "all":
            alerts = alerts.filter(status=filters.status)
        since = timezone.now() - timedelta(days=filters.days)
        alerts = alerts.filter(raised_at__gte=since)
    if filters.finding:
        alerts = alerts.filter(finding_code=filters.finding)
    return alerts


def _audit(request: HttpRequest, action: str, alerts: list[Alert]) -> None:
    record_audit(
        user=request.user,
        action=action,
        object_type="alert",
        now=timezone.now(),
        remote_addr=request.META.get("REMOTE_ADDR"),
        detail={"study_ids": sorted({a.study_id for a in alerts})},
    )


def _cards(request: HttpRequest, filters: BoardFilters) -> list[Alert]:
    alerts = list(_alerts(filters)[:HISTORY_LIMIT])
    _audit(request, "view_alert_board", alerts)
    return alerts


@permission_required(VIEW_BOARD, raise_exception=True)
def alert_board(request: HttpRequest) -> HttpResponse:
    """The board: unresolved alerts live, history by filter, fatigue figures."""
    filters = BoardFilters.parse(request)
    return render(
        request,
        "worklist/alert_board.html",
        {
            "alerts": _cards(request, filters),
            "filters": filters,
            "status_filters": STATUS_FILTERS,
            "figures": services.board_figures(now=timezone.now()),
            "finding_codes": sorted(
                set(Alert.objects.values_list("finding_code", flat=True))
            ),
        },
    )


@permission_required(VIEW_BOARD, raise_exception=True)
def alert_cards(request: HttpRequest) -> HttpResponse:
    """The board's cards alone, for a resync after a gap or a reconnect."""
    filters = BoardFilters.parse(request)
    return render(
        request, "worklist/_alert_cards.html", {"alerts": _cards(request, filters)}
    )


@permission_required(VIEW_BOARD, raise_exception=True)
def alert_card(request: HttpRequest, alert_id: int) -> HttpResponse:
    """One alert's card."""
    alert = _alerts(BoardFilters(status="all", days=90)).filter(pk=alert_id).first()
    if alert is None:
        raise Http404
    _audit(request, "view_alert", [alert])
    return render(request, "worklist/_alert_card.html", {"alert": alert})


@require_POST
@permission_required(ACKNOWLEDGE, raise_exception=True)
def acknowledge(request: HttpRequest, alert_id: int) -> HttpResponse:
    """Acknowledge an alert with an optional note; answers with the fresh card."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise PermissionDenied
    error = ""
    try:
        services.acknowledge_alert(
            alert_id, user, note=request.POST.get("note", ""), now=timezone.now()
        )
    except Alert.DoesNotExist:
        raise Http404 from None
    except services.AlertError as exc:
        error = str(exc)
    if not getattr(request, "htmx", False):
        return redirect("alert-board")
    alert = Alert.objects.select_related(*CARD_RELATED).get(pk=alert_id)
    return render(
        request, "worklist/_alert_card.html", {"alert": alert, "error": error}
    )
