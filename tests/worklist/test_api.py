"""The worklist API: order, filters, pagination, roles, actions and the schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser, User
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIClient

from tests.factories import StudyFactory
from triage.models import AuditEvent, Study
from triage.roles import Role
from triage.vocabulary import PatientClass
from worklist.api.serializers import StudyWithPatientSerializer
from worklist.models import AIFeedback, WorklistEntry
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(make_user: Callable[..., AbstractBaseUser]) -> Callable[..., APIClient]:
    def as_role(role: Role, username: str | None = None) -> APIClient:
        user = make_user(role, username)
        assert isinstance(user, User)
        client = APIClient()
        client.force_authenticate(user)
        return client

    return as_role


def study(**fields: Any) -> Study:
    made = StudyFactory.create(**{"reading_status": ReadingStatus.READY, **fields})
    return made


def test_list_is_most_urgent_first_and_older_first_on_ties(
    api: Callable[..., APIClient],
) -> None:
    now = timezone.now()
    low = study(priority_score=10)
    tie_new = study(priority_score=50, first_instance_received_at=now)
    tie_old = study(
        priority_score=50, first_instance_received_at=now - timedelta(hours=1)
    )
    top = study(priority_score=90)
    study(priority_score=99, reading_status=ReadingStatus.FINAL)
    response = api(Role.RADIOLOGIST).get("/api/studies/")
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [top.pk, tie_old.pk, tie_new.pk, low.pk]


def test_list_query_count_does_not_grow_with_rows(
    api: Callable[..., APIClient], django_assert_max_num_queries: Any
) -> None:
    client = api(Role.RADIOLOGIST)
    for _ in range(30):
        study(claimed_by=User.objects.get())
    with django_assert_max_num_queries(8):
        response = client.get("/api/studies/")
    assert len(response.json()["results"]) == 30


def test_cursor_pagination_walks_every_study_once(
    api: Callable[..., APIClient],
) -> None:
    made = {study(priority_score=float(i % 3)).pk for i in range(7)}
    client = api(Role.RADIOLOGIST)
    seen: list[int] = []
    url: str | None = "/api/studies/?page_size=3"
    while url:
        page = client.get(url).json()
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(made)


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("modality=CT", {"ct", "ct_sr"}),
        ("modality=sr", {"ct_sr"}),
        ("body_part=chest", {"dx"}),
        ("patient_class=emergency", {"dx"}),
        ("status=in_progress", {"ct_sr"}),
        ("ai_flagged=true", {"ct"}),
        ("ai_flagged=false", {"ct_sr", "dx"}),
        ("mine=true", {"ct_sr"}),
    ],
)
def test_filters(api: Callable[..., APIClient], query: str, matches: set[str]) -> None:
    client = api(Role.RADIOLOGIST)
    me = User.objects.get()
    made = {
        "ct": study(modalities="CT"),
        "ct_sr": study(
            modalities="CT\\SR", reading_status=ReadingStatus.IN_PROGRESS, claimed_by=me
        ),
        "dx": study(
            modalities="DX",
            body_part_examined="CHEST",
            patient_class=PatientClass.EMERGENCY,
        ),
    }
    WorklistEntry.objects.filter(study=made["ct"]).update(ai_flagged=True)
    names = {pk.pk: name for name, pk in made.items()}
    rows = client.get(f"/api/studies/?{query}").json()["results"]
    assert {names[row["id"]] for row in rows} == matches


def test_rows_show_reasons_and_the_viewer_link(
    api: Callable[..., APIClient], settings: Any
) -> None:
    settings.RADTRIAGE_VIEWER_URL_TEMPLATE = (
        "/viewer?StudyInstanceUIDs={study_instance_uid}"
    )
    made = study(
        study_instance_uid="1.2.9",
        priority_components=[
            {"code": "ai", "points": 47.0, "reason": "ICH suspected 0.94"}
        ],
    )
    row = api(Role.RADIOLOGIST).get(f"/api/studies/{made.pk}/").json()
    assert row["priority_components"][0]["reason"] == "ICH suspected 0.94"
    assert row["viewer_url"] == "/viewer?StudyInstanceUIDs=1.2.9"
    assert row["patient_name"].startswith("SYNTHETIC")
    assert AuditEvent.objects.filter(action="view_study").exists()


def test_list_access_is_audited(api: Callable[..., APIClient]) -> None:
    made = study()
    api(Role.RADIOLOGIST).get("/api/studies/")
    audit = AuditEvent.objects.get(action="list_studies")
    assert audit.detail == {"study_ids": [made.pk]}


def test_roles_without_phi_see_no_patient_identifiers(
    api: Callable[..., APIClient],
) -> None:
    study()
    rows = api(Role.DEPARTMENT_HEAD).get("/api/studies/").json()["results"]
    assert rows
    assert "patient_name" not in rows[0]
    assert "accession_number" not in rows[0]


@pytest.mark.parametrize(
    "role", [Role.CHARGE_TECHNOLOGIST, Role.DEPARTMENT_HEAD, Role.ADMINISTRATOR]
)
def test_only_radiologists_may_claim(api: Callable[..., APIClient], role: Role) -> None:
    made = study()
    assert api(role).post(f"/api/studies/{made.pk}/claim/").status_code == 403


def test_anonymous_requests_are_refused() -> None:
    assert APIClient().get("/api/studies/").status_code in (401, 403)


def test_claim_then_second_reader_gets_a_conflict(
    api: Callable[..., APIClient],
) -> None:
    made = study()
    first = api(Role.RADIOLOGIST, "first").post(f"/api/studies/{made.pk}/claim/")
    assert first.status_code == 200
    assert first.json()["claimed_by"] == "first"
    assert first.json()["reading_status"] == "in_progress"
    second = api(Role.RADIOLOGIST, "second").post(f"/api/studies/{made.pk}/claim/")
    assert second.status_code == 409
    assert "another radiologist" in second.json()["detail"]


def test_feedback_on_a_study_another_reader_holds_is_refused(
    api: Callable[..., APIClient],
) -> None:
    made = study()
    holder = api(Role.RADIOLOGIST, "holder")
    assert holder.post(f"/api/studies/{made.pk}/claim/").status_code == 200
    other = api(Role.RADIOLOGIST, "other")
    response = other.post(
        f"/api/studies/{made.pk}/feedback/",
        {"finding_code": "ich", "verdict": "disagree"},
        format="json",
    )
    assert response.status_code == 409
    assert not AIFeedback.objects.exists()
    mine = holder.post(
        f"/api/studies/{made.pk}/feedback/",
        {"finding_code": "ich", "verdict": "disagree"},
        format="json",
    )
    assert mine.status_code == 201


def test_release_open_final_and_feedback(api: Callable[..., APIClient]) -> None:
    made = study(study_instance_uid="1.2.77")
    client = api(Role.RADIOLOGIST)
    assert client.post(f"/api/studies/{made.pk}/claim/").status_code == 200
    assert client.post(f"/api/studies/{made.pk}/release/").json()["claimed_by"] is None
    opened = client.post(f"/api/studies/{made.pk}/open/").json()
    assert opened["viewer_url"].endswith("1.2.77")
    feedback = client.post(
        f"/api/studies/{made.pk}/feedback/",
        {"finding_code": "ich", "verdict": "unsure", "comment": "motion"},
        format="json",
    )
    assert feedback.status_code == 201
    assert AIFeedback.objects.get().verdict == "unsure"
    bad = client.post(
        f"/api/studies/{made.pk}/feedback/",
        {"finding_code": "ich", "verdict": "maybe"},
        format="json",
    )
    assert bad.status_code == 400
    assert (
        client.post(f"/api/studies/{made.pk}/final/").json()["reading_status"]
        == "final"
    )
    assert client.get("/api/studies/").json()["results"] == []
    assert client.post("/api/studies/999999/claim/").status_code == 404


def test_filters_are_kept_per_user(api: Callable[..., APIClient]) -> None:
    client = api(Role.RADIOLOGIST)
    assert client.get("/api/worklist/filters/").json()["modality"] == ""
    saved = client.put(
        "/api/worklist/filters/",
        {"modality": "CT", "ai_flagged": True, "mine": False},
        format="json",
    )
    assert saved.status_code == 200
    again = client.get("/api/worklist/filters/").json()
    assert (again["modality"], again["ai_flagged"]) == ("CT", True)


def test_schema_documents_the_worklist_endpoints(
    api: Callable[..., APIClient],
) -> None:
    response = api(Role.RADIOLOGIST).get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/studies/" in paths
    assert "/api/studies/{id}/claim/" in paths
    assert "/api/worklist/filters/" in paths


def test_fast_row_serialisation_matches_the_declared_fields(
    make_user: Callable[..., AbstractBaseUser],
) -> None:
    reader = make_user(Role.RADIOLOGIST)
    now = timezone.now()
    made = study(
        claimed_by=reader,
        claimed_at=now,
        acquired_at=now - timedelta(minutes=5),
        priority_components=[{"code": "order", "points": 20.0, "reason": "urgent"}],
    )
    WorklistEntry.objects.filter(study=made).update(ai_flagged=True)
    made = Study.objects.select_related(
        "patient", "worklist_entry", "worklist_entry__claimed_by"
    ).get(pk=made.pk)
    serializer = StudyWithPatientSerializer(made)
    generic = serializers.ModelSerializer.to_representation(serializer, made)
    assert serializer.data == generic
