"""The radiologist's worklist page, its row partials and its actions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from inference.vocabulary import AIStatus
from tests.factories import StudyFactory, entry_of
from tests.worklist.test_services import make_finding
from triage.models import AuditEvent, Study
from triage.roles import Role
from worklist import refresh, services
from worklist.models import AIFeedback, WorklistFilter
from worklist.vocabulary import ReadingStatus

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def study(**fields: Any) -> Study:
    return StudyFactory.create(**{"reading_status": ReadingStatus.READY, **fields})


def test_page_shows_rows_with_reasons_labels_and_live_script(
    login: Callable[..., Client],
) -> None:
    client = login(Role.RADIOLOGIST)
    study(
        priority_score=117,
        ai_status=AIStatus.SCORED,
        priority_components=[
            {
                "code": "ai",
                "points": 47,
                "reason": "ICH suspected 0.94",
                "finding": "ich",
            },
            {"code": "patient_class", "points": 30, "reason": "emergency"},
        ],
    )
    study(ai_status=AIStatus.FAILED, ai_status_reason="no axial series")
    html = client.get("/worklist/").content.decode()
    assert "ICH suspected 0.94" in html
    assert "Critical" in html  # the band in words, not colour alone
    assert "emergency <span" in html
    assert "Failed: no axial series" in html
    assert "worklist/live.js" in html
    assert "htmx" in html
    assert html.index("ICH suspected") < html.index("no axial series")
    assert AuditEvent.objects.filter(action="view_worklist").exists()


def test_other_roles_cannot_open_the_worklist(login: Callable[..., Client]) -> None:
    assert login(Role.DEPARTMENT_HEAD).get("/worklist/").status_code == 403


def test_filters_are_saved_and_applied(login: Callable[..., Client]) -> None:
    client = login(Role.RADIOLOGIST)
    ct = study(modalities="CT", study_description="CT HEAD")
    study(modalities="DX", study_description="XR WRIST")
    response = client.post(
        "/worklist/filters/", {"modality": "CT", "ai_flagged": "", "body_part": ""}
    )
    assert response.status_code == 302
    assert WorklistFilter.objects.get().modality == "CT"
    html = client.get("/worklist/").content.decode()
    assert "CT HEAD" in html
    assert "XR WRIST" not in html
    assert client.get(f"/worklist/rows/{ct.pk}/").status_code == 200


def test_row_partial_is_204_when_the_study_left_the_list(
    login: Callable[..., Client],
) -> None:
    client = login(Role.RADIOLOGIST)
    done = study(reading_status=ReadingStatus.FINAL)
    assert client.get(f"/worklist/rows/{done.pk}/").status_code == 204


def test_claim_release_and_final_from_the_page(login: Callable[..., Client]) -> None:
    client = login(Role.RADIOLOGIST)
    made = study()
    claimed = client.post(f"/worklist/studies/{made.pk}/claim/", headers=HTMX)
    assert claimed.status_code == 200
    assert "(you)" in claimed.content.decode()
    assert 'button class="release"' in claimed.content.decode()
    released = client.post(f"/worklist/studies/{made.pk}/release/", headers=HTMX)
    assert 'button class="claim"' in released.content.decode()
    final = client.post(f"/worklist/studies/{made.pk}/final/", headers=HTMX)
    assert final.content == b""
    made.refresh_from_db()
    assert entry_of(made).reading_status == ReadingStatus.FINAL
    assert client.post(f"/worklist/studies/{made.pk}/bogus/").status_code == 404


def test_claim_of_a_claimed_study_says_who_has_it(
    login: Callable[..., Client], make_user: Callable[..., Any]
) -> None:
    made = study()
    services.claim_study(
        made.pk, make_user(Role.RADIOLOGIST, "colleague"), now=timezone.now()
    )
    client = login(Role.RADIOLOGIST)
    html = client.post(
        f"/worklist/studies/{made.pk}/claim/", headers=HTMX
    ).content.decode()
    assert "another radiologist is reading this study" in html
    assert "colleague" in html


def test_open_in_viewer_records_and_redirects(
    login: Callable[..., Client], settings: Any
) -> None:
    settings.RADTRIAGE_VIEWER_URL_TEMPLATE = (
        "/viewer?StudyInstanceUIDs={study_instance_uid}"
    )
    made = study(study_instance_uid="1.2.5")
    response = login(Role.RADIOLOGIST).get(f"/worklist/studies/{made.pk}/open/")
    assert response.status_code == 302
    assert response["Location"] == "/viewer?StudyInstanceUIDs=1.2.5"
    made.refresh_from_db()
    assert entry_of(made).first_opened_at is not None


def test_feedback_buttons_record_the_verdict(login: Callable[..., Client]) -> None:
    made = study()
    client = login(Role.RADIOLOGIST)
    response = client.post(
        f"/worklist/studies/{made.pk}/feedback/",
        {"finding_code": "ich", "verdict": "agree"},
        headers=HTMX,
    )
    assert response.status_code == 200
    assert AIFeedback.objects.get().verdict == "agree"
    bad = client.post(f"/worklist/studies/{made.pk}/feedback/", {"verdict": "x"})
    assert bad.status_code == 400


def test_rows_partial_for_resync(
    login: Callable[..., Client], django_assert_max_num_queries: Any
) -> None:
    client = login(Role.RADIOLOGIST)
    for _ in range(20):
        study()
    # 13: whatever the rows, plus at most one a process makes every 30 s to
    # learn whether the RIS sends reports (worklist.site).
    with django_assert_max_num_queries(13):
        html = client.get("/worklist/rows/").content.decode()
    assert html.count('class="study') == 20


def test_row_shows_the_finding_its_model_and_heatmap_thumbnail(
    login: Callable[..., Client], storage_dir: Any
) -> None:
    made = study()
    (storage_dir / "heatmaps").mkdir(parents=True)
    (storage_dir / "heatmaps" / "h.jpg").write_bytes(b"\xff\xd8\xff fake")
    finding = make_finding(made, heatmap_path="heatmaps/h.jpg")
    refresh.recompute_priority(made.pk, now=timezone.now())
    client = login(Role.RADIOLOGIST)
    html = client.get("/worklist/").content.decode()
    assert "ICH suspected 0.94" in html
    assert "ICH demo 1.0" in html
    assert f"/worklist/findings/{finding.pk}/heatmap" in html
    image = client.get(f"/worklist/findings/{finding.pk}/heatmap")
    assert image.status_code == 200
    assert image["Content-Type"] == "image/jpeg"
    assert AuditEvent.objects.filter(action="view_heatmap").exists()


def test_heatmap_outside_storage_is_refused(
    login: Callable[..., Client], storage_dir: Any
) -> None:
    finding = make_finding(study(), heatmap_path="../../etc/passwd")
    response = login(Role.RADIOLOGIST).get(f"/worklist/findings/{finding.pk}/heatmap")
    assert response.status_code == 404
