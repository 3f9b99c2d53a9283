"""The report pages, CSV export and printable view, as the department head sees them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.test import Client

from tests.worklist import tat_fixtures as fx
from tests.worklist.report_data import create_fixture_studies
from triage.models import Study
from triage.roles import Role

pytestmark = pytest.mark.django_db

QUERY = "?start=2026-03-02&end=2026-03-04"


@pytest.fixture(autouse=True)
def _targets(settings: object) -> None:
    settings.RADTRIAGE_SLA_MINUTES = fx.SLA_MINUTES  # type: ignore[attr-defined]


@pytest.fixture
def studies() -> dict[str, Study]:
    return create_fixture_studies()


@pytest.fixture
def head(login: Callable[[Role], Client]) -> Client:
    return login(Role.DEPARTMENT_HEAD)


def test_the_turnaround_page_shows_the_hand_computed_figures(
    head: Client, studies: dict[str, Study]
) -> None:
    page = head.get("/reports/" + QUERY).content.decode()
    assert 'data-figure="studies">6<' in page
    assert 'data-figure="report-median">180.0<' in page
    assert 'data-figure="report-p90">222.0<' in page
    assert 'data-figure="sla-share">60%<' in page
    # The waiting stage: 4 studies, median 24.5, p90 50.9 minutes.
    assert (
        '<tr data-stage="waiting"><th scope="row">Scored → opened</th>'
        '<td class="num">4</td><td class="num">24.5</td><td class="num">50.9</td>'
    ) in page
    assert page.count("<svg") == 3
    assert "<polyline" in page
    assert f'href="/reports/studies/{studies["E"].pk}/"' in page


def test_the_page_defaults_to_the_last_thirty_days(head: Client) -> None:
    response = head.get("/reports/")
    assert response.status_code == 200
    assert 'data-page="reports"' in response.content.decode()


def test_a_reversed_range_is_refused_with_a_message(head: Client) -> None:
    response = head.get("/reports/?start=2026-03-04&end=2026-03-02")
    assert response.status_code == 400
    assert "start date is after the end date" in response.content.decode()
    assert head.get("/reports/turnaround.csv?start=x").status_code == 400


def test_the_csv_carries_every_figure(head: Client, studies: dict[str, Study]) -> None:
    response = head.get("/reports/turnaround.csv" + QUERY)
    assert response["Content-Type"].startswith("text/csv")
    assert "turnaround-2026-03-02-2026-03-04.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    by_key = {(r["section"], r["group"]): r for r in rows}
    for code, (count, median, p90) in fx.EXPECTED_STAGES.items():
        row = by_key[("stage", code)]
        assert int(row["count"]) == count
        assert float(row["median_minutes"]) == pytest.approx(median, abs=0.01)
        assert float(row["p90_minutes"]) == pytest.approx(p90, abs=0.01)
    for name, (finalized, within) in fx.EXPECTED_SLA.items():
        row = by_key[("sla", name)]
        assert (int(row["finalized"]), int(row["within_target"])) == (finalized, within)
    assert by_key[("sla", "emergency")]["share_within_target"] == "0.5000"
    assert by_key[("sla", "unknown")]["share_within_target"] == ""
    for day, (n, final, within, median, p90) in fx.EXPECTED_DAILY.items():
        row = by_key[("daily", day.isoformat())]
        assert (int(row["count"]), int(row["finalized"])) == (n, final)
        assert int(row["within_target"]) == within
        assert float(row["median_minutes"]) == pytest.approx(median, abs=0.01)
        assert float(row["p90_minutes"]) == pytest.approx(p90, abs=0.01)
    assert by_key[("weekly", "2026-03-02")]["count"] == "6"
    flagged = by_key[("ai_flag_to_open", "flagged")]
    assert (flagged["count"], flagged["median_minutes"]) == ("2", "16.50")
    assert by_key[("ai_flag_report_tat", "not_flagged")]["median_minutes"] == "180.00"
    assert (
        head.get("/reports/turnaround.csv" + QUERY + "&ai_flagged=yes")
        .content.decode()
        .count("\r\ndaily,")
        == 2  # A on 2 March, E on 3 March
    )


def test_the_printable_view_has_no_navigation_but_all_figures(
    head: Client, studies: dict[str, Study]
) -> None:
    page = head.get("/reports/turnaround/print/" + QUERY + "&modality=CT").content
    text = page.decode()
    assert 'class="topbar"' not in text
    assert "modality CT" in text
    assert 'data-figure="studies">4<' in text  # A, B, E, F
    assert text.count("<svg") == 3


def test_a_study_timeline_shows_stage_minutes(
    head: Client, studies: dict[str, Study]
) -> None:
    text = head.get(f"/reports/studies/{studies['E'].pk}/").content.decode()
    assert 'Opened → final</th><td class="num">220.0' in text
    assert '(target 240.0)</th><td class="num">250.0' in text
    assert studies["E"].accession_number not in text  # no identifiers


@pytest.mark.parametrize("role", [Role.RADIOLOGIST, Role.CHARGE_TECHNOLOGIST])
def test_other_roles_cannot_read_reports(
    login: Callable[[Role], Client], role: Role
) -> None:
    client = login(role)
    for url in ("/reports/", "/reports/turnaround.csv", "/reports/turnaround/print/"):
        assert client.get(url).status_code == 403
