"""The department head reads the turnaround report in a real browser."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import RunningServer
from tests.worklist import tat_fixtures as fx

# Studies with the hand-computed timeline of tests/worklist/tat_fixtures.py.
SEED = """
from triage.models import Study
from tests.worklist.report_data import create_fixture_studies
if not Study.objects.filter(patient_class="emergency").exists():
    create_fixture_studies()
"""


@pytest.fixture(scope="module")
def seeded(server: RunningServer) -> RunningServer:
    server.manage("shell", "-c", SEED)
    return server


def test_department_head_reads_turnaround_charts_and_downloads_csv(
    logged_in_page: Callable[[str], Page], seeded: RunningServer
) -> None:
    page = logged_in_page("depthead")
    assert page.url == f"{seeded.base_url}/reports/"
    expect(page.locator("h1")).to_contain_text("Reports")

    page.fill("input[name=start]", "2026-03-02")
    page.fill("input[name=end]", "2026-03-04")
    page.click(".report-filters button[type=submit]")
    page.wait_for_load_state("networkidle")
    expect(page.locator("[data-figure=studies]")).to_have_text("6")
    expect(page.locator("[data-figure=report-median]")).to_have_text("180.0")
    expect(page.locator("[data-figure=sla-share]")).to_have_text("60%")
    waiting = page.locator("tr[data-stage=waiting] td")
    expect(waiting).to_have_text(["4", "24.5", "50.9"])

    # The three charts are drawn: laid out with a size, with lines and bars.
    charts = page.locator("figure.chart svg")
    expect(charts).to_have_count(3)
    for index in range(3):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50
    assert page.locator("figure.chart polyline").count() >= 2
    assert page.locator("figure.chart rect.bar").count() >= 6

    with page.expect_download() as download_info:
        page.click("[data-action=csv]")
    download = download_info.value
    assert download.suggested_filename == "turnaround-2026-03-02-2026-03-04.csv"
    text = Path(download.path()).read_text(encoding="utf-8")
    rows = {(r["section"], r["group"]): r for r in csv.DictReader(io.StringIO(text))}
    for code, (count, median, p90) in fx.EXPECTED_STAGES.items():
        row = rows[("stage", code)]
        assert int(row["count"]) == count
        assert float(row["median_minutes"]) == pytest.approx(median, abs=0.01)
        assert float(row["p90_minutes"]) == pytest.approx(p90, abs=0.01)
    assert rows[("sla", "emergency")]["share_within_target"] == "0.5000"

    # The slowest report links to its timeline.
    page.locator("table[data-table=outliers] a").first.click()
    expect(page.locator("h1")).to_contain_text("turnaround")
    expect(page.locator("body")).to_contain_text("250.0")


def test_department_head_opens_the_printable_view(
    logged_in_page: Callable[[str], Page], seeded: RunningServer
) -> None:
    page = logged_in_page("depthead")
    page.goto(f"{seeded.base_url}/reports/?start=2026-03-02&end=2026-03-04")
    page.click("[data-action=print]")
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_have_text("RadTriage turnaround report")
    expect(page.locator(".topbar")).to_have_count(0)
    expect(page.locator("figure.chart svg")).to_have_count(3)
    pdf = page.pdf()  # what the browser would print
    assert pdf.startswith(b"%PDF")


def test_department_head_opens_the_ai_performance_report(
    logged_in_page: Callable[[str], Page], seeded: RunningServer
) -> None:
    page = logged_in_page("depthead")
    page.click("text=AI performance")
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_have_text("Reports: AI performance")
    expect(page.locator("table[data-table=versions]")).to_be_visible()
    expect(page.locator("table[data-table=drift]")).to_be_visible()
