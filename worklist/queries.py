"""The worklist's database queries: which studies it lists, in which order."""

from __future__ import annotations

from django.db.models import F, OrderBy, QuerySet

from triage.models import Study
from worklist.priority import WORKLIST_ORDER
from worklist.vocabulary import OFF_THE_LIST, ReadingStatus

#: Where each field of the engine's order lives on a worklist query
#: (``priority_score`` is annotated from the entry by :func:`for_worklist`).
_ORDER_COLUMNS: dict[str, str] = {
    "score": "priority_score",
    "received_at": "first_instance_received_at",
    "study_id": "id",
}

#: :data:`worklist.priority.WORKLIST_ORDER` as ordering names, for the API's
#: cursor pagination.
ORDERING: tuple[str, ...] = tuple(
    ("-" if descending else "") + _ORDER_COLUMNS[name]
    for name, descending in WORKLIST_ORDER
)


def worklist_order() -> list[OrderBy]:
    """:data:`worklist.priority.WORKLIST_ORDER` as an ORDER BY (NULLs last)."""
    return [
        F(_ORDER_COLUMNS[name]).desc(nulls_last=True)
        if descending
        else F(_ORDER_COLUMNS[name]).asc(nulls_last=True)
        for name, descending in WORKLIST_ORDER
    ]


def not_final(queryset: QuerySet[Study] | None = None) -> QuerySet[Study]:
    """Studies with a worklist entry that is not final (nor its order cancelled)."""
    studies = Study.objects.all() if queryset is None else queryset
    return studies.filter(worklist_entry__isnull=False).exclude(
        worklist_entry__reading_status__in=OFF_THE_LIST
    )


#: What a worklist row shows of a study beyond the study row itself.
ROW_RELATED = (
    "patient",
    "scoring",
    "order",
    "worklist_entry",
    "worklist_entry__claimed_by",
)


def for_worklist(
    queryset: QuerySet[Study] | None = None, *, cancelled: bool = False
) -> QuerySet[Study]:
    """Studies still to be read, in the worklist's order, with what rows show.

    ``cancelled``: instead, the studies whose order was cancelled, which left
    the list; their rows show the cancellation's reason.
    """
    if cancelled:
        studies = Study.objects.all() if queryset is None else queryset
        listed = studies.filter(worklist_entry__reading_status=ReadingStatus.CANCELLED)
    else:
        listed = not_final(queryset)
    return (
        listed.select_related(*ROW_RELATED)
        .annotate(priority_score=F("worklist_entry__priority_score"))
        .order_by(*worklist_order())
    )
